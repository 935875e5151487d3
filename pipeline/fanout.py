"""The one bounded Ray fan-out: submit tasks, keep at most ``max_in_flight`` of them in
flight, hand each result to ``on_result`` as it arrives (stage 1 writes a shard, stage
4 appends a line), so a crash loses only what was in flight."""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from .errors import PipelineError

T = TypeVar("T")


def slots(options: dict[str, Any]) -> int:
    """How many tasks with Ray ``options`` the cluster can run at once (at least 1)."""
    import ray

    have = ray.cluster_resources()
    fits = []
    if options.get("num_gpus"):
        fits.append(have.get("GPU", 0.0) / options["num_gpus"])
    if options.get("num_cpus"):
        fits.append(have.get("CPU", 0.0) / options["num_cpus"])
    for name, amount in (options.get("resources") or {}).items():
        if amount:
            fits.append(have.get(name, 0.0) / amount)
    return max(1, int(min(fits))) if fits else 1


def lacking(what: str, options: dict[str, Any], have: dict[str, float]) -> str | None:
    """The one-line refusal for tasks with Ray ``options`` on a cluster whose total
    resources are ``have``, or None when every resource they ask for exists."""
    need = {
        "CPU": options.get("num_cpus") or 0,
        "GPU": options.get("num_gpus") or 0,
        **(options.get("resources") or {}),
    }
    for name, amount in need.items():
        if amount and have.get(name, 0.0) < amount:
            listed = ", ".join(
                f"{k}={v:g}"
                for k, v in sorted(have.items())
                if not k.startswith(("node:", "accelerator_type:")) and k != "object_store_memory" and k != "memory"
            )
            return (
                f"{what} needs {name}={amount:g} per task, and the Ray cluster has {have.get(name, 0.0):g} ({listed})"
            )
    return None


def check_resources(what: str, options: dict[str, Any]) -> None:
    """Refuse, in one line, tasks asking for a resource the cluster does not have at all
    (they would wait forever)."""
    import ray

    refusal = lacking(what, options, ray.cluster_resources())
    if refusal:
        raise PipelineError(refusal)


def fan_out(
    submit: Callable[[T], Any], items: Iterable[T], max_in_flight: int, on_result: Callable[[T, Any], None]
) -> int:
    """Run ``submit(item)`` (returns an ObjectRef) for every item, at most
    ``max_in_flight`` at once; ``on_result(item, value)`` in completion order. Returns
    the number of results handled."""
    import ray

    pending: dict[Any, T] = {}
    items = iter(items)
    handled = 0
    exhausted = False
    while True:
        while not exhausted and len(pending) < max(1, max_in_flight):
            try:
                item = next(items)
            except StopIteration:
                exhausted = True
                break
            pending[submit(item)] = item
        if not pending:
            return handled
        done, _ = ray.wait(list(pending), num_returns=1)
        item = pending.pop(done[0])
        on_result(item, ray.get(done[0]))
        handled += 1
