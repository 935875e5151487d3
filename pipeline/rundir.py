"""The run directory: ``runs/<name>/`` holds everything a run writes.

config.yaml     the resolved config (written once; a different config is refused)
manifest.json   git SHA, package versions, host, hardware; updated per stage
measure/ fit/ search/ evaluate/ report/   one folder per stage, each with DONE.json
                once the stage has completed (with the identity of its inputs)
stale/          outputs of stages re-run because their inputs changed (pipeline.staleness)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from .config import RunConfig, config_from_dict, dump_config
from .errors import PipelineError

STAGES = ("measure", "fit", "search", "evaluate", "report")


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] if path.is_file() else []


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("lanas", "torch", "torchvision", "ray", "pyarrow", "scikit-learn", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass(frozen=True)
class RunDir:
    path: Path
    config: RunConfig

    @classmethod
    def open(
        cls,
        path: str | Path,
        config: RunConfig,
        overwrite: bool = False,
        create: bool = True,
        write_config: bool = True,
    ) -> "RunDir":
        """Create the run directory, or reopen one made with the same config.

        A run directory whose config differs (apart from ``measure.num_archs``, which
        may grow, and ``search.budgets_ms``, which accumulate: the stored config keeps
        every budget searched in the run) is refused unless ``overwrite``, which
        replaces only config.yaml. Without ``create``, a folder that is not a run directory
        yet is refused (the stages after measure need one). Without ``write_config`` the
        reopened run's config.yaml is left as it is until :meth:`save_config` (a caller that
        still checks what the new config adds)."""
        root = Path(path)
        cfg_file = root / "config.yaml"
        if root.exists() and not root.is_dir():
            raise PipelineError(f"--run-dir {root} is a file, not a directory")
        if not create and not cfg_file.is_file():
            raise PipelineError(f"{root} is not a run directory yet: run `lanas measure` (or `lanas reproduce`) first")
        if cfg_file.exists() and not overwrite:
            config = _reopened(root, config)
        elif root.exists() and any(root.iterdir()) and not cfg_file.exists():
            raise PipelineError(f"{root} exists and is not a run directory (no config.yaml); refusing to write there")
        if not write_config and not cfg_file.is_file():
            raise ValueError("write_config=False needs an existing run directory")
        root.mkdir(parents=True, exist_ok=True)
        run = cls(root, config)
        if write_config:
            run.save_config()
        if overwrite or not (root / "manifest.json").is_file():
            run.update_manifest({})  # reopened as it is: the manifest keeps the code the stages ran with
        return run

    def save_config(self) -> None:
        """Write the run's config.yaml (atomically)."""
        write_atomic(self.path / "config.yaml", dump_config(self.config))

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        cfg_file = Path(path) / "config.yaml"
        if not cfg_file.is_file():
            raise PipelineError(f"{path} is not a run directory (no config.yaml)")
        return cls(Path(path), config_from_dict(yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {}))

    def stage(self, name: str) -> Path:
        assert name in STAGES, name
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def is_done(self, name: str) -> bool:
        return (self.path / name / "DONE.json").is_file()

    def done_summary(self, name: str) -> dict[str, Any]:
        """What a completed stage recorded in its done-marker ({} if not done or unreadable)."""
        try:
            return json.loads((self.path / name / "DONE.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def stage_results(self, name: str) -> list[dict[str, Any]]:
        """``<stage>/results.jsonl`` of a completed stage; a clear error if it is not."""
        f = self.path / name / "results.jsonl"
        if not f.is_file() or not self.is_done(name):
            raise PipelineError(f"no completed {name} stage in {self.path} (run `lanas {name}` first)")
        return read_jsonl(f)

    def clear_done(self, name: str) -> None:
        (self.path / name / "DONE.json").unlink(missing_ok=True)

    def manifest(self) -> dict[str, Any]:
        f = self.path / "manifest.json"
        return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}

    def hardware_ids(self) -> dict[str, str]:
        """Target spec -> hardware id (dataset partition), as stage 1 last probed them."""
        return dict(self.manifest().get("measure", {}).get("targets", {}))

    def hardware_id(self, spec: str) -> str:
        ids = self.hardware_ids()
        if spec not in ids:
            raise PipelineError(f"target {spec} has not been measured in {self.path} (run `lanas measure` first)")
        return ids[spec]

    def update_manifest(self, extra: dict[str, Any]) -> dict[str, Any]:
        f = self.path / "manifest.json"
        manifest = self.manifest()
        manifest.update(
            {
                "git_sha": git_sha(),
                "versions": versions(),
                "host": platform.node(),
                "platform": platform.platform(),
                "config_identity": self.config.identity(),
            }
        )
        manifest.update(extra)
        write_atomic(f, json.dumps(manifest, indent=2, sort_keys=True))
        return manifest


def _reopened(root: Path, config: RunConfig) -> RunConfig:
    """``config`` for the run directory ``root`` made with it (its stored budgets added);
    refused when ``root``'s stored config is unreadable or another config."""
    cfg_file = root / "config.yaml"
    try:
        old = config_from_dict(yaml.safe_load(cfg_file.read_text(encoding="utf-8")) or {})
    except Exception as exc:  # noqa: BLE001 - any unreadable config is the same problem
        raise PipelineError(f"{cfg_file} is unreadable ({exc}); pass --overwrite to replace it") from None
    if old.identity() != config.identity():
        diff = _first_difference(old.identity_dict(), config.identity_dict())
        raise PipelineError(
            f"run directory {root} was created with a different config ({diff}); use another --run-dir or pass "
            "--overwrite"
        )
    return config.with_budgets(old.search.budgets_ms).with_imported(old.imported)


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path or 'config'}: {a!r} there, {b!r} now"
