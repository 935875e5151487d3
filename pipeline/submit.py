"""``lanas submit``: run ``lanas reproduce`` on a Ray cluster through the Jobs API.

A thin wrapper over :class:`ray.job_submission.JobSubmissionClient`: it packs the
working directory (without runs/, .venv/, .git/), sets the entrypoint, passes the Ray
auth token as an ``Authorization: Bearer`` header (token authentication stays on), and
can follow the logs, show the status or stop a job. Plain ``ray job submit`` works too
(README, "On a cluster").
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from .config import load_config
from .errors import PipelineError
from .fanout import lacking

EXCLUDES = ["runs/", ".venv/", ".git/", "*.egg-info/", "__pycache__/", ".pytest_cache/", ".whl/", ".gl/"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
AGENT_WAIT_S = 60.0  # how long to retry a head whose job agent is not up yet


def default_address() -> str:
    """The Jobs API address as Ray's own `ray job` finds it: RAY_API_SERVER_ADDRESS, then an
    http(s) RAY_ADDRESS, then RAY_DASHBOARD_ADDRESS (this project's older variable), then
    the local head's dashboard."""
    for name in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "RAY_DASHBOARD_ADDRESS"):
        value = os.environ.get(name, "")
        if value and (name != "RAY_ADDRESS" or value.startswith(("http://", "https://"))):
            return value
    return "http://127.0.0.1:8265"


def _connection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        default=None,
        help="dashboard/Jobs API address (default: RAY_API_SERVER_ADDRESS, an http RAY_ADDRESS, "
        "RAY_DASHBOARD_ADDRESS, else http://127.0.0.1:8265)",
    )
    p.add_argument(
        "--token-file",
        help="file holding the Ray auth token (default: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)",
    )
    p.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="send the auth token over plain http:// to another machine (refused by default: use https:// "
        "or an SSH tunnel to 127.0.0.1)",
    )


def _timeout(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _submission_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML profile (a path inside the working directory)")
    p.add_argument("--run-dir", help="run directory on the cluster (use shared storage for multi-node clusters)")
    p.add_argument("--working-dir", default=".", help="directory packed and shipped with the job (default: .)")
    p.add_argument(
        "--follow", action="store_true", help="stream the job's logs until it ends; exit non-zero unless it SUCCEEDED"
    )
    p.add_argument(
        "--timeout", type=_timeout, default=0, help="with --follow: stop following after this many seconds (0 = never)"
    )
    p.add_argument(
        "--allow-missing-resources",
        action="store_true",
        help="submit even if the cluster has none of a resource the profile asks for now "
        "(an autoscaling cluster adds such nodes on demand)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`lanas submit`: submit, or act on one job (--status / --logs / --stop; `lanas job` has the same as verbs)."""
    _connection_arguments(p)
    _submission_arguments(p)
    job = p.add_mutually_exclusive_group()  # one action on an existing job at a time
    job.add_argument("--status", metavar="JOB_ID", help="print the status of a job (also: lanas job status)")
    job.add_argument("--logs", metavar="JOB_ID", help="print the logs of a job (also: lanas job logs)")
    job.add_argument("--stop", metavar="JOB_ID", help="stop a job (also: lanas job stop)")


JOB_VERBS = {
    "submit": "submit `lanas reproduce` with a profile",
    "list": "list the cluster's jobs",
    "status": "print a job's status",
    "logs": "print a job's logs (--follow: until it ends)",
    "stop": "stop a job",
}


def add_job_arguments(p: argparse.ArgumentParser) -> None:
    """`lanas job submit|list|status|logs|stop`, as Ray's `ray job`."""
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, help_ in JOB_VERBS.items():
        v = verbs.add_parser(verb, help=help_, description=help_)
        _connection_arguments(v)
        if verb == "submit":
            _submission_arguments(v)
        elif verb != "list":
            v.add_argument("job_id", metavar="JOB_ID")
        if verb == "logs":
            v.add_argument("--follow", action="store_true", help="stream new output until the job ends")
            v.add_argument("--timeout", type=_timeout, default=0, help="with --follow: stop after this many seconds")


LOOPBACK = {"localhost", "ip6-localhost"}


def check_transport(address: str, allow_insecure_http: bool = False) -> None:
    """Refuse to send the token in clear: plain http (or no scheme, which Ray reads as
    http) is fine to this machine only, unless ``allow_insecure_http``."""
    import ipaddress
    from urllib.parse import urlsplit

    url = urlsplit(address if "://" in address else f"http://{address}")
    if url.scheme == "https" or allow_insecure_http:
        return
    if url.scheme != "http":
        raise PipelineError(f"--address {address}: expected an http:// or https:// Jobs API address (the dashboard)")
    host = (url.hostname or "").lower()
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host in LOOPBACK
    if not loopback:
        raise PipelineError(
            f"refusing to send the Ray auth token in clear over http:// to {host}: use https://, an SSH tunnel "
            "to 127.0.0.1, or pass --allow-insecure-http"
        )


def _warn_if_shared(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        print(
            f"lanas submit: warning: the Ray auth token file {path} can be read by group or others "
            f"(mode {mode:o}); `chmod 600 {path}`",
            file=sys.stderr,
            flush=True,
        )


def read_token(token_file: str | None = None) -> str:
    """The auth token: --token-file, else RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if token_file is None and os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    path = Path(token_file or os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        raise PipelineError(
            f"no Ray auth token: set RAY_AUTH_TOKEN or write the token to {path} "
            "(`ray get-auth-token` on the head prints it)"
        ) from None
    if not token:
        raise PipelineError(f"the Ray auth token file {path} is empty")
    _warn_if_shared(path)
    return token


def client(address: str, token: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address, headers={"Authorization": f"Bearer {token}"})
    except Exception as exc:  # noqa: BLE001 - connection, auth and version errors all end here
        if _is_auth_refusal(exc):
            raise PipelineError(
                f"the Ray head at {address} refused the auth token ({_first_line(exc)}); pass the "
                "cluster's token with --token-file or RAY_AUTH_TOKEN"
            ) from None
        raise PipelineError(f"cannot reach the Ray Jobs API at {address}: {_first_line(exc)}") from None


def _is_auth_refusal(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("401", "403", "unauthorized", "unauthenticated", "forbidden", "invalid token"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def entrypoint(config: str, run_dir: str | None) -> str:
    cmd = ["python", "-m", "pipeline", "reproduce", "--config", config, "--quiet"]
    if run_dir:
        cmd += ["--run-dir", run_dir]
    return shlex.join(cmd)


def cluster_resources(address: str, token: str) -> dict[str, float]:
    """Total logical resources of the cluster's alive nodes, from the dashboard's node summary."""
    import json
    import re
    import urllib.request

    req = urllib.request.Request(
        f"{address.rstrip('/')}/nodes?view=summary", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the user's own dashboard address
        per_node = json.loads(resp.read())["data"]["nodeLogicalResources"]
    total: dict[str, float] = {}
    for text in per_node.values():  # "0.0/2.0 CPU\n0.0/1.0 latency_node\n0B/16.17GiB memory"
        for m in re.finditer(r"^[\d.]+/([\d.]+) (\S+)$", text, re.M):
            total[m.group(2)] = total.get(m.group(2), 0.0) + float(m.group(1))
    return total


def check_cluster(cfg, address: str, token: str) -> None:
    """Refuse, before submitting, a profile asking for a resource the cluster has none of."""

    try:
        have = cluster_resources(address, token)
    except Exception as exc:  # noqa: BLE001 - an older dashboard: the stages still check at run time
        print(f"[submit] warning: could not read the cluster's resources ({_first_line(exc)}); not checked", flush=True)
        return
    for what, options in cfg.resource_asks().values():
        refusal = lacking(what, options, have)
        if refusal:
            raise PipelineError(
                f"{refusal} at {address}; nothing was submitted (if the cluster autoscales, "
                "pass --allow-missing-resources)"
            )


def submit(
    address: str,
    config: str,
    run_dir: str | None = None,
    working_dir: str = ".",
    token: str | None = None,
    allow_missing_resources: bool = False,
    allow_insecure_http: bool = False,
) -> tuple[object, str]:
    """Validate locally (config, token, the cluster's resources), then submit. Returns (client, job id)."""

    wd = Path(working_dir).resolve()
    cfg_path = Path(config)
    full = cfg_path if cfg_path.is_absolute() else wd / cfg_path
    if not full.is_file():
        raise PipelineError(f"config file not found: {config}")
    try:
        rel = full.resolve().relative_to(wd)
    except ValueError:
        raise PipelineError(
            f"config {config} must be inside the working directory {wd} to travel with the job"
        ) from None
    cfg = load_config(full)  # a config error stops here, before anything is submitted
    check_transport(address, allow_insecure_http)
    token = token if token is not None else read_token()
    c = client(address, token)
    if not allow_missing_resources:
        check_cluster(cfg, address, token)
    return c, _submit_job(c, address, rel, run_dir, wd)


def _submit_job(c, address: str, rel: Path, run_dir: str | None, wd: Path) -> str:
    """Submit ``lanas reproduce`` of config ``rel`` with working directory ``wd``; waits up to
    ``AGENT_WAIT_S`` for a head that has just started (it answers 500 until its job agent is
    up). Returns the job id."""
    submission_id = f"lanas-{Path(rel).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    deadline = time.monotonic() + AGENT_WAIT_S
    while True:
        try:
            return c.submit_job(
                submission_id=submission_id,
                entrypoint=entrypoint(str(rel), run_dir),
                runtime_env={"working_dir": str(wd), "excludes": EXCLUDES},
                metadata={"lanas_config": str(rel)},
            )
        except Exception as exc:  # noqa: BLE001
            if "No available agent" in str(exc) and time.monotonic() < deadline:
                time.sleep(2.0)
                continue
            raise PipelineError(f"job submission to {address} failed: {_first_line(exc)}") from None


def follow(c, job_id: str, timeout: float = 0, poll: float = 2.0) -> str:
    """Print new log output until the job ends; returns the final status."""
    printed = 0
    start = time.monotonic()
    while True:
        status = c.get_job_status(job_id)
        status = str(getattr(status, "value", status))
        logs = c.get_job_logs(job_id)
        if len(logs) > printed:
            print(logs[printed:], end="", flush=True)
            printed = len(logs)
        if status in TERMINAL:
            return status
        if timeout and time.monotonic() - start > timeout:
            return status
        time.sleep(poll)


def _on_job(args: argparse.Namespace, verb: str, job: str | None) -> None:
    """status / logs / stop / list through the Jobs API, one line on any error."""
    c = client(args.address, read_token(args.token_file))
    try:
        if verb == "list":
            jobs = sorted(c.list_jobs(), key=lambda j: j.start_time or 0)
            for j in jobs:
                print(f"{j.submission_id or j.job_id}  {j.status}  {(j.entrypoint or '')[:100]}")
            if not jobs:
                print(f"no jobs on {args.address}")
        elif verb == "status":
            info = c.get_job_info(job)
            print(f"{job}: {info.status} {info.message or ''}".rstrip())
        elif verb == "logs" and getattr(args, "follow", False):
            _end(job, follow(c, job, args.timeout))
        elif verb == "logs":
            print(c.get_job_logs(job), end="")
        else:
            print(f"{job}: stop requested" if c.stop_job(job) else f"{job}: already finished")
    except PipelineError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise PipelineError(f"job {job}: {_first_line(exc)}" if job else _first_line(exc)) from None


def _end(job_id: str, status: str) -> None:
    print(f"job {job_id}: {status}")
    if status != "SUCCEEDED":
        raise PipelineError(f"job {job_id} ended {status}")


def _submit_and_follow(args: argparse.Namespace, how: str) -> None:
    if not args.config:
        raise PipelineError(f"--config is required to submit{how}")
    c, job_id = submit(args.address, args.config, args.run_dir, args.working_dir, read_token(args.token_file),
                       args.allow_missing_resources, args.allow_insecure_http)  # fmt: skip
    print(f"submitted {job_id} to {args.address}")
    for verb in ("status", "logs", "stop"):
        print(f"  {verb + ':':7} lanas job {verb} {job_id} --address {args.address}")
    if args.follow:
        _end(job_id, follow(c, job_id, args.timeout))


def submit_command(args: argparse.Namespace) -> None:
    """`lanas submit` (its --status / --logs / --stop flags keep working)."""
    args.address = args.address or default_address()
    check_transport(args.address, args.allow_insecure_http)  # before the token is read or sent
    for verb in ("status", "logs", "stop"):
        if getattr(args, verb):
            return _on_job(args, verb, getattr(args, verb))
    _submit_and_follow(args, " (or use --status/--logs/--stop JOB_ID)")


def job_command(args: argparse.Namespace) -> None:
    """`lanas job VERB`."""
    args.address = args.address or default_address()
    check_transport(args.address, args.allow_insecure_http)
    if args.verb == "submit":
        return _submit_and_follow(args, "")
    _on_job(args, args.verb, getattr(args, "job_id", None))
