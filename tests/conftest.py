import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption(
        "--order",
        choices=("file", "reverse", "random"),
        default="file",
        help="run the tests in file order, reversed, or shuffled (modules, then tests within each "
        "module, so module fixtures are built once): the suite must pass in every order",
    )
    parser.addoption("--order-seed", type=int, default=0, help="seed of --order random")


RAY_FIXTURES = {"ray_start", "ray_head", "two_node_head"}  # tests using any of these start a real Ray


@pytest.hookimpl(tryfirst=True)  # before -m deselects: `make test-fast` is -m "not slow and not ray"
def pytest_collection_modifyitems(config, items):
    for item in items:
        if RAY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.ray)
    order = config.getoption("--order")
    if order == "file":
        return
    modules: dict = {}
    for item in items:
        modules.setdefault(item.module.__name__, []).append(item)
    groups = list(modules.values())
    if order == "reverse":
        groups = [g[::-1] for g in groups[::-1]]
    else:
        rng = random.Random(config.getoption("--order-seed"))
        rng.shuffle(groups)
        for g in groups:
            rng.shuffle(g)
    items[:] = [item for g in groups for item in g]
    print(f"test order: {order}" + (f" (seed {config.getoption('--order-seed')})" if order == "random" else ""))


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def write_cifar10(root: Path, n_train_per_batch: int = 20, n_test: int = 20, seed: int = 0) -> Path:
    """Write a tiny dataset in CIFAR-10's own on-disk format (python pickles)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n):
        return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}

    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as fh:
            pickle.dump(batch(n_train_per_batch), fh)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(batch(n_test), fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    return root


SMOKE = ROOT / "configs" / "smoke.yaml"


@pytest.fixture(scope="session")
def ray_start():
    """A real local Ray with 2 CPUs for the whole session (tests that use it only)."""
    import ray

    from lanas_pipeline.ray_env import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


def smoke_config(**overrides):
    from lanas_pipeline.config import load_config

    return load_config(SMOKE, overrides)


@pytest.fixture(scope="session")
def measured_run(ray_start, tmp_path_factory):
    """A smoke run directory whose stage 1 has measured the smoke profile's 60 architectures."""
    from lanas_pipeline.measure import run_measure
    from lanas_pipeline.rundir import RunDir

    run = RunDir.open(tmp_path_factory.mktemp("measured") / "run", smoke_config())
    run_measure(run, progress=False)
    return run


@pytest.fixture(scope="session")
def fitted(measured_run):
    """The measured smoke run with its stage 2 done (predictor fitted by Ray Train); tests
    that change a run work on a copy."""
    from lanas_pipeline.fit.stage import run_fit

    summary = run_fit(measured_run)
    return measured_run, summary


@pytest.fixture(scope="session")
def reproduced(fitted, tmp_path_factory):
    """A copy of the fitted smoke run carried through search, evaluate and report (one
    in-process ``reproduce``): the tests that start from a finished run (staleness, the
    API example) work on copies of it (:func:`copy_run`)."""
    from lanas_pipeline.reproduce import reproduce
    from lanas_pipeline.stages import Options

    run = copy_fitted(fitted[0], tmp_path_factory.mktemp("reproduced") / "run")
    reproduce(run.path / "config.yaml", run.path, options=Options(progress=False))
    return run


def copy_run(run, dst):
    """A copy of a whole run directory (every stage) in ``dst``."""
    import shutil

    from lanas_pipeline.rundir import RunDir

    shutil.copytree(run.path, dst)
    return RunDir.existing(dst)


def copy_fitted(run, dst, config=None):
    """A copy of a fitted run's stages 1-2 in ``dst`` (with ``config``, if given, as its
    config): the run directory of a test that searches on."""
    import shutil

    from lanas_pipeline.config import dump_config
    from lanas_pipeline.rundir import RunDir

    shutil.copytree(run.path, dst, ignore=shutil.ignore_patterns("search", "evaluate", "report"))
    if config is not None:
        (dst / "config.yaml").write_text(dump_config(config))
    return RunDir.existing(dst)


def run_cli(*args, cwd=ROOT, timeout=600):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "lanas_pipeline", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def kill_worker_while(title: str, work, ready=lambda: True, timeout: float = 180.0):
    """Run ``work()`` in a thread and SIGKILL the first Ray worker process titled ``title``
    (Ray titles a worker ``ray::<task or actor.method>`` while it runs one) once ``ready()``.
    Returns (killed pid or None, work's result); work's exception is raised here."""
    import threading
    import time

    import psutil

    outcome: dict = {}

    def drive():
        try:
            outcome["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    killed, deadline = None, time.monotonic() + timeout
    while killed is None and driver.is_alive() and time.monotonic() < deadline:
        if ready():
            for p in psutil.process_iter(["cmdline"]):
                if (p.info["cmdline"] or [""])[0] == title:
                    p.kill()
                    killed = p.pid
                    break
        time.sleep(0.05)
    driver.join(600)
    if "error" in outcome:
        raise outcome["error"]
    return killed, outcome.get("result")


def lanas(capsys, *args, cwd=ROOT):
    """``lanas ARGS`` in this process (no interpreter start-up, as run_cli pays): its exit
    code, stdout and stderr, as subprocess.run returns them. For commands that start no
    Ray of their own (refusals, submit, export, a run whose stages are all done)."""
    import os
    from types import SimpleNamespace

    from lanas_pipeline import cli

    before = os.getcwd()
    capsys.readouterr()
    os.chdir(cwd)
    try:
        code = cli.main([str(a) for a in args])
    finally:
        os.chdir(before)
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


NB201_SOURCES = ("titanx_1", "titanxp_1", "2080ti_32", "gold_6240")  # none of the benchmarks' held-out devices


def nb201_config_text(devices=NB201_SOURCES) -> str:
    """configs/nb201.yaml with only ``devices`` in its imported list."""
    lines = (ROOT / "configs" / "nb201.yaml").read_text().splitlines(keepends=True)
    return "".join(x for x in lines if "table: " not in x or any(f"name: {d}," in x for d in devices))


@pytest.fixture(scope="session")
def nb201_run(tmp_path_factory):
    """A NAS-Bench-201 run with the published tables of NB201_SOURCES imported (no Ray);
    tests that change it work on a copy."""
    from lanas_pipeline import cli

    where = tmp_path_factory.mktemp("nb201")
    (where / "nb201.yaml").write_text(nb201_config_text())
    assert cli.main(["import", "--config", str(where / "nb201.yaml"), "--run-dir", str(where / "run")]) == 0
    return where / "run"
