"""``lanas export``: a derived architecture as an ONNX file for deployment.

The network is built from the candidate's genotype at the run's macro, with the weights
stage 4 trained (``evaluate/weights/<arch_id>.pt``), and traced by
:func:`lanas.runtimes.export_onnx` (the TorchScript exporter: the graph users deploy;
stage 1 writes the same nodes directly, :mod:`lanas.onnx_graph`), with a dynamic batch
dimension (input ``x``: ``[batch, channels, H, W]``; output ``logits``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from lanas.genotype import Genotype
from lanas.network import Network
from lanas.runtimes import export_onnx

from .errors import PipelineError
from .evaluate import weights_path
from .rundir import RunDir


def find_candidate(run: RunDir, name: str) -> dict:
    rows = run.stage_results("evaluate")
    for r in rows:
        if r["name"] == name:
            return r
    names = ", ".join(dict.fromkeys(r["name"] for r in rows))
    raise PipelineError(f"no candidate {name!r} in {run.path / 'evaluate'}; candidates: {names}")


def export_candidate(run_dir: str, name: str, out: str) -> str:
    run = RunDir.existing(run_dir)
    cfg = run.config
    path = Path(out)
    if path.exists():
        raise PipelineError(f"{path} exists; refusing to overwrite it (remove it or pick another --onnx path)")
    row = find_candidate(run, name)
    net = Network(Genotype.from_json(row["genotype"], cfg.space.ops), cfg.macro()).eval()
    weights = weights_path(run, row["arch_id"])
    if weights.is_file():
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        print(
            f"lanas: warning: no trained weights for {name} ({weights}); exporting the untrained network",
            file=sys.stderr,
        )
    x = torch.zeros(1, cfg.data.in_channels, cfg.data.resolution, cfg.data.resolution)
    data = export_onnx(net, x, dynamic_batch=True)
    if not path.parent.is_dir():
        raise PipelineError(f"folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
    return (
        f"wrote {path} ({len(data) / 1024:.0f} KiB): candidate {name}, arch {row['arch_id'][:10]}, "
        f"{'trained' if weights.is_file() else 'untrained'} weights, input x [batch, {cfg.data.in_channels}, "
        f"{cfg.data.resolution}, {cfg.data.resolution}]"
    )
