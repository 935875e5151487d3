"""Connecting to Ray: only entry points call this."""

from __future__ import annotations

import logging
import os
import socket

from .errors import PipelineError

# Ray Train V2 keeps one `ray.train.report` per worker until its controller polls the
# workers, every 2 s by default, so a report waits up to that long: a predictor fit of
# a few seconds per target spent most of its time waiting to report (the smoke
# profile's Ray Train job: 47 s at 2 s, 26 s at 0.5 s). A poll that takes longer is
# only waited on (a worker is declared dead after 10 minutes), so polling more often
# loses nothing. Set RAY_TRAIN_HEALTH_CHECK_INTERVAL_S to choose another interval.
TRAIN_POLL_INTERVAL_S = "0.5"


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast (``ray.init`` waits minutes) when a cluster address does not answer.
    ``None``/``auto``/``local`` (a local Ray) are not checked."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise PipelineError(f"invalid Ray address {address!r}: expected host:port or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise PipelineError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


def init_ray(address: str | None = None, num_cpus: int | None = None, verbose: bool = False) -> None:
    """Start a local Ray (``address`` None) or connect to a cluster; clear error if unreachable.

    ``address`` may also come from ``RAY_ADDRESS`` (set by the Jobs API for submitted jobs).
    Unless ``verbose``, the console shows our lines only: Ray logs errors alone there, and
    workers' output stays in their log files (the dashboard shows them); a failed task
    still reaches the driver as its exception."""
    import ray

    if ray.is_initialized():
        return
    check_reachable(address)
    # Ray Train V2 and Tune both run in the same driver; V2 is the default in 2.60
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", TRAIN_POLL_INTERVAL_S)
    kwargs = {"logging_level": logging.WARNING if verbose else logging.ERROR, "log_to_driver": verbose}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["num_cpus"] = num_cpus
        kwargs["include_dashboard"] = True
    where = address or os.environ.get("RAY_ADDRESS")
    try:
        context = ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError) as exc:
        raise PipelineError(f"cannot connect to the Ray cluster at {where or 'local'}: "
                            f"{str(exc).splitlines()[0]}") from None  # fmt: skip
    url = getattr(context, "dashboard_url", None)
    print(f"[ray] {'connected to ' + where if where else 'started a local Ray'}"
          + (f"; dashboard: http://{url}" if url else " (no dashboard)"), flush=True)  # fmt: skip


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 0.0))


def quiet_ray_data() -> None:
    """One progress line per stage from us, not Ray Data's bars and per-dataset lines in
    front of every later line: Ray Data's console handler shows errors only (its log
    file under the Ray session keeps everything)."""
    import ray.data
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = ctx.enable_operator_progress_bars = ctx.print_on_execution_start = False
    for handler in logging.getLogger(ray.data.__name__).handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)
