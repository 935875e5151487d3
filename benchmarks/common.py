"""Shared helpers of the benchmark scripts: where results go, how they are recorded."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def record(name: str, figures: dict[str, Any], command: str) -> Path:
    """Write ``results/<name>.json`` with the figures, the command and the machine."""
    from lanas.measure import cpu_model

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": command,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpu": cpu_model(), "python": sys.version.split()[0], "host": platform.node()},
        **figures,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"recorded {out}")
    return out
