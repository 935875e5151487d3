"""Job submission against a real local Ray head with token authentication (slow)."""

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest
from conftest import ROOT, lanas, run_cli

pytestmark = pytest.mark.slow

WRONG_TOKEN_MESSAGE = "refused the auth token"
START_TRIES = 3  # a free port can be taken between choosing it and `ray start` binding it


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for sk in socks:
        sk.bind(("127.0.0.1", 0))
    ports = [sk.getsockname()[1] for sk in socks]
    for sk in socks:
        sk.close()
    return ports


MARKER = "LANAS_TEST_RAY_INSTANCE"  # set in the environment of `ray start`: every process of that Ray inherits it


def _processes_of(instance: str) -> list[psutil.Process]:
    """The processes of the Ray instance started with ``MARKER=instance`` in its
    environment: the daemons `ray start` leaves (they inherit the variable) and all
    their descendants (agents, dashboard modules and workers, whose /proc environ is
    overwritten by their process titles)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARKER) == instance:
                found[p.pid] = p
                found.update((c.pid, c) for c in p.children(recursive=True))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return [p for p in found.values() if _alive(p)]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop(instance: str) -> None:
    """Stop only the Ray instance this fixture started (never `ray stop`, which stops
    every Ray on the host, the suite's own and other users' included)."""
    procs = _processes_of(instance)
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=5)
    for p in alive + _processes_of(instance):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(_processes_of(instance), timeout=5)


@dataclass
class Head:
    """A `ray start --head` on loopback: its Jobs API address, token file, GCS address,
    environment and temp dir; ``add_node`` joins a second node to it."""

    address: str
    token_file: Path
    gcs: str
    env: dict
    temp_dir: str

    def add_node(self, cpus: int, resources: dict) -> None:
        """`ray start --address ... --resources ...` on loopback, on ports chosen free (retried),
        with a temp dir of its own: two nodes sharing one would share (and clean up) each
        other's runtime-env packages."""
        for _attempt in range(START_TRIES):
            manager, objects, metrics, agent, agent_grpc, runtime_env = _free_ports(6)
            r = subprocess.run(
                [RAY, "start", f"--address={self.gcs}", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}",
                 f"--resources={json.dumps(resources)}", f"--node-manager-port={manager}",
                 f"--object-manager-port={objects}", f"--metrics-export-port={metrics}",
                 f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
                 f"--runtime-env-agent-port={runtime_env}", f"--temp-dir={self.temp_dir}/node2"],
                env=self.env, capture_output=True, text=True,
            )  # fmt: skip
            if r.returncode == 0:
                break
        assert r.returncode == 0, r.stdout + r.stderr
        deadline = time.monotonic() + 60  # the dashboard lists a node a few seconds after it joins
        while not any(all(k in text for k in resources) for text in self.nodes().values()):
            assert time.monotonic() < deadline, f"the node with {resources} never showed on the dashboard"
            time.sleep(1)

    def nodes(self) -> dict[str, str]:
        """Node id -> its logical resources, as the dashboard lists them."""
        req = urllib.request.Request(
            f"{self.address}/nodes?view=summary",
            headers={"Authorization": f"Bearer {self.token_file.read_text().strip()}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["data"]["nodeLogicalResources"]


RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture()
def ray_head(tmp_path):
    """`ray start --head` on 127.0.0.1 with token auth on, on ports chosen free (retried
    if one was taken meanwhile); afterwards only its own processes (and its added nodes')
    are stopped."""
    token = secrets.token_hex(32)  # what `ray get-auth-token --generate` makes; ~/.ray is left alone
    token_file = tmp_path / "auth_token"
    token_file.write_text(token)
    token_file.chmod(0o600)  # as `ray get-auth-token` leaves it; a shared one is warned about
    # as after `source .venv/bin/activate`: the job's `python` is the venv's
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    instance = secrets.token_hex(8)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PATH": path, MARKER: instance}
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # unix socket paths must stay < 108 bytes
    try:
        for _attempt in range(START_TRIES):
            # own ports for everything: the session's in-process Ray (ray_start) may be running beside it
            gcs, dashboard, agent, agent_grpc, metrics, runtime_env, client = _free_ports(7)
            r = subprocess.run(
                [
                    RAY,
                    "start",
                    "--head",
                    "--node-ip-address=127.0.0.1",
                    "--dashboard-host=127.0.0.1",
                    f"--port={gcs}",
                    f"--dashboard-port={dashboard}",
                    f"--dashboard-agent-listen-port={agent}",
                    f"--dashboard-agent-grpc-port={agent_grpc}",
                    f"--metrics-export-port={metrics}",
                    f"--runtime-env-agent-port={runtime_env}",
                    f"--ray-client-server-port={client}",
                    "--num-cpus=2",
                    "--disable-usage-stats",
                    f"--temp-dir={ray_tmp}",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if r.returncode == 0:
                break
            _stop(instance)
        assert r.returncode == 0, r.stdout + r.stderr
        yield Head(f"http://127.0.0.1:{dashboard}", token_file, f"127.0.0.1:{gcs}", env, ray_tmp)
    finally:
        _stop(instance)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        assert not _processes_of(instance)


def _jobs(address: str, token_file: Path) -> list:
    """The jobs the head knows of (read with the right token)."""
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(
        address, headers={"Authorization": f"Bearer {token_file.read_text().strip()}"}
    ).list_jobs()


def test_submit_reproduce_on_two_nodes_with_token_follow_logs_and_refusals(ray_head, tmp_path, capsys):
    """Two nodes on one machine (loopback only): the head, and a second node started with
    ``--resources '{"latency_node": 1}'``. A profile that asks for ``latency_node`` is
    submitted through the Jobs API; every measurement lands on the second node."""
    address, token_file = ray_head.address, ray_head.token_file
    ray_head.add_node(cpus=1, resources={"latency_node": 1})
    [latency_node] = [n for n, text in ray_head.nodes().items() if "latency_node" in text]
    run_dir = tmp_path / "job-run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    base = ["submit", "--address", address, "--token-file", str(token_file)]

    def submit_with(token: Path) -> subprocess.CompletedProcess:
        """`lanas submit` of the smoke profile with this token file and no RAY_AUTH* in the environment."""
        args = ["submit", "--address", address, "--config", "configs/smoke.yaml", "--token-file", str(token)]
        return subprocess.run(
            [sys.executable, "-m", "lanas_pipeline", *args], cwd=ROOT, capture_output=True, text=True, env=env
        )

    # without a token the head refuses (and nothing is submitted)
    r = submit_with(tmp_path / "nope")
    assert r.returncode == 2 and "no Ray auth token" in r.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token")
    r = submit_with(wrong)
    assert r.returncode == 2 and "lanas: error:" in r.stderr and WRONG_TOKEN_MESSAGE in r.stderr, r.stderr
    # a config that does not exist, an unreachable address: clear errors
    r = lanas(capsys, *base, "--config", "configs/nope.yaml")
    assert r.returncode == 2 and "config file not found" in r.stderr
    r = lanas(
        capsys,
        "submit",
        "--address",
        "http://127.0.0.1:9",
        "--config",
        "configs/smoke.yaml",
        "--token-file",
        str(token_file),
    )
    assert r.returncode == 2 and "cannot reach the Ray Jobs API" in r.stderr
    # a profile asking for what the cluster has none of: refused before submitting, naming both
    r = lanas(capsys, *base, "--config", "configs/cifar10.yaml")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "lanas: error: measuring on target cuda-torch-b32 needs GPU=1 per task, and the Ray cluster has 0 "
        f"(CPU=3, latency_node=1) at {address}; nothing was submitted (if the cluster autoscales, pass "
        "--allow-missing-resources)"
    ], r.stderr
    assert _jobs(address, token_file) == []  # every refusal above submitted nothing

    # the real submission, followed to the end
    profile = "configs/smoke-two-node.yaml"
    r = run_cli(*base, "--config", profile, "--run-dir", str(run_dir), "--follow", timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    job_id = r.stdout.split("submitted ", 1)[1].split()[0]
    assert f"job {job_id}: SUCCEEDED" in r.stdout
    assert (run_dir / "report" / "report.md").is_file() and (run_dir / "report" / "pareto.png").is_file()
    # every measurement (stage 1, the closed loop's, evaluate's) ran on the latency node
    for dataset in ("measure/dataset", "evaluate/latency"):
        nodes = set(pd.read_parquet(run_dir / dataset)["node"])
        assert {n.rsplit(":", 1)[1] for n in nodes} == {latency_node}, (dataset, nodes)
    r = lanas(capsys, *base, "--status", job_id)  # the older flags keep working
    assert r.returncode == 0 and "SUCCEEDED" in r.stdout
    job = ["job", "status", job_id, "--address", address, "--token-file", str(token_file)]
    r = lanas(capsys, *job)
    assert r.returncode == 0 and r.stdout.startswith(f"{job_id}: SUCCEEDED")
    r = lanas(capsys, *job[:1], "logs", *job[2:], "--follow")  # an ended job: its logs, then its status
    assert r.returncode == 0 and "[reproduce] finished" in r.stdout and f"job {job_id}: SUCCEEDED" in r.stdout
    r = lanas(capsys, *job[:1], "list", *job[3:])
    assert r.returncode == 0 and f"{job_id}  SUCCEEDED" in r.stdout

    # stop: a second job is stopped on request
    r = lanas(capsys, *job[:1], "submit", *job[3:], "--config", profile, "--run-dir", str(tmp_path / "stopped"))
    job2 = r.stdout.split("submitted ", 1)[1].split()[0]
    assert f"lanas job logs {job2} --address {address}" in r.stdout
    r = lanas(capsys, "job", "stop", job2, *job[3:])
    assert r.returncode == 0 and job2 in r.stdout
    for _ in range(60):
        if "STOPPED" in lanas(capsys, "job", "status", job2, *job[3:]).stdout:
            break
        time.sleep(1)
    assert "STOPPED" in lanas(capsys, "job", "status", job2, *job[3:]).stdout
    r = lanas(capsys, "job", "logs", job2, *job[3:], "--follow")
    assert r.returncode == 2 and f"job {job2} ended STOPPED" in r.stderr


def test_plain_ray_job_submit_works_as_documented(ray_head):
    """README's `RAY_AUTH_MODE=token ray job submit ...`: packing, auth and the job's python."""
    address, token_file = ray_head.address, ray_head.token_file
    ray = RAY
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    env.pop("RAY_AUTH_TOKEN", None)
    r = subprocess.run(
        [
            ray,
            "job",
            "submit",
            "--address",
            address,
            "--working-dir",
            ".",
            "--runtime-env-json",
            '{"excludes": ["runs/", ".venv/", ".git/"]}',
            "--",
            "python",
            "-m",
            "pipeline",
            "reproduce",
            "--help",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "succeeded" in (r.stdout + r.stderr).lower() and "--force-predictor" in r.stdout
    env["RAY_AUTH_MODE"] = "disabled"  # the client sends no token: the head refuses
    r = subprocess.run(
        [ray, "job", "submit", "--address", address, "--", "echo", "hi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "token" in (r.stdout + r.stderr).lower()
