"""Every bad input in ``docs/bad-inputs.md``: one line ``lanas: error: ...`` on stderr, exit
code 2, and nothing written or lost (every file under the test's folder has the same
content before and after, and no file appears or goes). Each case runs ``lanas`` in this
process on a fresh folder, or on a copy of the session's measured or fitted smoke run;
the line it prints, with its folders written as ``<run>`` and ``<tmp>``, must be the
one the docs' table shows for it.

To rewrite the table after a message changes: ``LANAS_BAD_INPUTS_ROWS=rows.jsonl pytest
tests/test_bad_inputs.py``, then ``python tests/test_bad_inputs.py rows.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bad-inputs.md"
SMOKE = "configs/smoke.yaml"


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def _private(path: Path, text: str) -> None:
    _write(path, text)
    path.chmod(0o600)


def _smoke_with(old: str, new: str) -> Callable[[Path], None]:
    def setup(t: Path) -> None:
        text = (ROOT / SMOKE).read_text()
        assert old in text, old
        _write(t / "bad.yaml", text.replace(old, new))

    return setup


def _genotypes(lines: list[str]) -> Callable[[Path], None]:
    return lambda t: _write(t / "g.jsonl", "".join(x + "\n" for x in lines))


def _partition(run: Path) -> Path:
    return next((run / "measure" / "dataset").glob("hardware=*"))


def _foreign_parquet(t: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1, 2]}), _partition(t / "run") / "part-foreign.parquet")


def _nan_latencies(t: Path) -> None:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for f in _partition(t / "run").glob("*.parquet"):
        table = pq.read_table(f)
        bad = pc.multiply(table["latency_ratio"], float("nan"))
        pq.write_table(table.set_column(table.schema.get_field_index("latency_ratio"), "latency_ratio", bad), f)


def _predictor_json(t: Path, edit: Callable[[dict], None]) -> None:
    f = next((t / "run" / "fit").glob("*/predictor.json"))
    meta = json.loads(f.read_text())
    edit(meta)
    f.write_text(json.dumps(meta))


def _search_done(t: Path) -> None:  # a run whose search is done, evaluate not
    _write(t / "run" / "search" / "results.jsonl", "")
    _write(t / "run" / "search" / "DONE.json", json.dumps({"finished_at": 0}))


GOOD_GENOTYPE = json.dumps(
    {
        "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4,
        "normal_concat": [2, 3, 4, 5],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4,
        "reduce_concat": [2, 3, 4, 5],
    }
)


ARCH = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"


BAD_OP_ARCH = ARCH.replace("skip_connect~1", "conv_5x5~1")
QUOTED_GENOTYPE = '"' + GOOD_GENOTYPE.replace('"', '""') + '"'  # one CSV cell


def _csv(text: str) -> Callable[[Path], None]:
    return lambda t: _write(t / "t.csv", text)


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # config, genotypes, parquet, predictor, run, cluster, token, cli
    argv: tuple[str, ...]  # {run} is the run folder, {tmp} the test's folder
    base: str = "fresh"  # fresh | measured | fitted | nb201 (tables imported, conftest.nb201_run): what {run} starts as
    setup: Callable[[Path], None] = field(default=lambda t: None)


IMPORT = ("import", "--run-dir", "{run}", "--target", "phone", "--table", "{tmp}/t.csv")

CASES = [
    Case("config-missing", "config", ("measure", "--config", "{tmp}/nope.yaml", "--run-dir", "{run}")),
    Case("config-yaml", "config", ("measure", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("seed: 0", "seed: [0")),
    Case("config-empty", "config", ("measure", "--config", "{tmp}/empty.yaml", "--run-dir", "{run}"),
         setup=lambda t: _write(t / "empty.yaml", "")),
    Case("config-directory", "config", ("measure", "--config", "{tmp}", "--run-dir", "{run}")),
    Case("config-name-path", "config", ("measure", "--config", "{tmp}/bad.yaml"),
         setup=_smoke_with("name: smoke", "name: ../../etc")),
    Case("config-typo", "config", ("measure", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("search:", "serch:")),
    Case("config-type", "config", ("search", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("lambdas: [0.0, 2.0]", "lambdas: [0.0, big]")),
    Case("config-negative-lambda", "config", ("search", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("lambdas: [0.0, 2.0]", "lambdas: [0.0, -2.0]")),
    Case("config-method", "config", ("search", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("lambdas: [0.0, 2.0]", "lambdas: [0.0, 2.0]\n  methods: [ladnas, proxyless]")),
    Case("config-num-archs", "config", ("measure", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("num_archs: 60", "num_archs: 0")),
    Case("config-runtime", "config", ("measure", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("runtime: torch", "runtime: tensorrt")),
    Case("config-op", "config", ("measure", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("sep_conv_3x3,", "sep_conv_9x9,")),
    Case("config-other-run", "run", ("measure", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"), "measured",
         _smoke_with("channels: 8\nmeasure", "channels: 16\nmeasure")),
    Case("run-foreign-folder", "run", ("measure", "--config", SMOKE, "--run-dir", "{tmp}/photos"),
         setup=lambda t: _write(t / "photos" / "cat.jpg", b"\xff\xd8")),
    Case("run-dir-file", "run", ("measure", "--config", SMOKE, "--run-dir", "{tmp}/notes.txt"),
         setup=lambda t: _write(t / "notes.txt", "mine")),
    Case("genotypes-unknown-op", "genotypes", ("measure", "--config", SMOKE, "--run-dir", "{run}", "--genotypes",
         "{tmp}/g.jsonl"), "measured", _genotypes([GOOD_GENOTYPE.replace("sep_conv_3x3", "conv_7x7", 1)])),
    Case("genotypes-json", "genotypes", ("measure", "--config", SMOKE, "--run-dir", "{run}", "--genotypes",
         "{tmp}/g.jsonl"), "measured", _genotypes([GOOD_GENOTYPE, "{not json"])),
    Case("genotypes-input", "genotypes", ("predict", "--run-dir", "{run}", "--genotypes", "{tmp}/g.jsonl"), "fitted",
         _genotypes([GOOD_GENOTYPE.replace('["sep_conv_3x3", 1]', '["sep_conv_3x3", 7]', 1)])),
    Case("genotypes-missing-file", "genotypes", ("predict", "--run-dir", "{run}", "--genotypes", "{tmp}/none.jsonl"),
         "fitted"),
    Case("parquet-corrupt", "parquet", ("measure", "--config", SMOKE, "--run-dir", "{run}"), "measured",
         lambda t: _write(_partition(t / "run") / "part-bad.parquet", b"garbage")),
    Case("parquet-foreign", "parquet", ("fit", "--config", SMOKE, "--run-dir", "{run}"), "measured",
         _foreign_parquet),
    Case("parquet-stray-file", "parquet", ("measure", "--config", SMOKE, "--run-dir", "{run}"), "measured",
         lambda t: _write(_partition(t / "run") / "notes.txt", "mine")),
    Case("parquet-nan-latencies", "parquet", ("fit", "--config", SMOKE, "--run-dir", "{run}"), "measured",
         _nan_latencies),
    Case("predictor-other-space", "predictor", ("search", "--config", SMOKE, "--run-dir", "{run}"), "fitted",
         lambda t: _predictor_json(t, lambda m: m.update(ops=m["ops"][:-1]))),
    Case("predictor-other-layout", "predictor", ("search", "--config", SMOKE, "--run-dir", "{run}"), "fitted",
         lambda t: _predictor_json(t, lambda m: m.update(layout_version=m["layout_version"] + 1))),
    Case("predictor-weights-corrupt", "predictor", ("search", "--config", SMOKE, "--run-dir", "{run}"), "fitted",
         lambda t: _write(next((t / "run" / "fit").glob("*/predictor.pt")), b"not torch")),
    Case("predictor-gate", "predictor", ("search", "--config", SMOKE, "--run-dir", "{run}"), "fitted",
         lambda t: _predictor_json(t, lambda m: m["val"].update(mape=0.9))),
    Case("predictor-transfer-self", "predictor", ("fit", "--config", SMOKE, "--run-dir", "{run}", "--target",
         "cpu-t1-torch-b1", "--transfer-from", "cpu-t1-torch-b1"), "fitted"),
    Case("run-not-measured", "run", ("search", "--config", SMOKE, "--run-dir", "{run}")),
    Case("run-not-evaluated", "run", ("report", "--config", SMOKE, "--run-dir", "{run}"), "fitted", _search_done),
    Case("run-export-before-evaluate", "run", ("export", "--run-dir", "{run}", "--candidate", "lam9-seed0", "--onnx",
         "{tmp}/x.onnx"), "fitted"),
    Case("cluster-unreachable", "cluster", ("measure", "--config", SMOKE, "--run-dir", "{run}", "--address",
         "127.0.0.1:9")),
    Case("cluster-address", "cluster", ("fit", "--config", SMOKE, "--run-dir", "{run}", "--address", "nohost")),
    Case("token-missing", "token", ("submit", "--address", "http://127.0.0.1:9", "--config", SMOKE, "--token-file",
         "{tmp}/no-token")),
    Case("token-empty", "token", ("submit", "--address", "http://127.0.0.1:9", "--config", SMOKE, "--token-file",
         "{tmp}/token"), setup=lambda t: _private(t / "token", "\n")),
    Case("token-insecure-http", "token", ("submit", "--address", "http://192.0.2.7:8265", "--config", SMOKE)),
    Case("submit-config-outside", "cli", ("submit", "--address", "http://127.0.0.1:9", "--config", "{tmp}/c.yaml",
         "--token-file", "{tmp}/token"), setup=lambda t: [_write(t / "c.yaml", ""), _private(t / "token", "x")]),
    Case("cli-num-archs", "cli", ("measure", "--config", SMOKE, "--run-dir", "{run}", "--num-archs", "-4")),
    Case("cli-budget", "cli", ("search", "--config", SMOKE, "--run-dir", "{run}", "--budget-ms", "cpu-t1-torch-b1")),
    Case("cli-unknown-target", "cli", ("fit", "--config", SMOKE, "--run-dir", "{run}", "--target", "tpu-v9"),
         "measured"),
    Case("cli-unknown-target-new-run", "cli", ("measure", "--config", SMOKE, "--run-dir", "{run}", "--target",
         "tpu-v9")),
    Case("cli-samples", "cli", ("fit", "--config", SMOKE, "--run-dir", "{run}", "--samples", "5")),
    Case("cli-diverse", "cli", ("measure", "--config", SMOKE, "--run-dir", "{run}", "--select", "diverse")),
    Case("config-space", "config", ("measure", "--config", "{tmp}/bad.yaml", "--run-dir", "{run}"),
         setup=_smoke_with("space:\n", "space:\n  name: nasnet\n")),
    Case("table-unknown-op", "table", IMPORT, "nb201", _csv(f"arch,latency_ms\n{BAD_OP_ARCH},2\n")),
    Case("table-other-space", "table", IMPORT, "nb201", _csv(f"genotype,latency_ms\n{QUOTED_GENOTYPE},2\n")),
    Case("table-duplicate", "table", IMPORT, "nb201", _csv(f"arch,latency_ms\n{ARCH},2.0\n{ARCH},2.5\n")),
    Case("table-zero-latency", "table", IMPORT, "nb201", _csv(f"arch,latency_ms\n{ARCH},0\n")),
    Case("table-nan-latency", "table", IMPORT, "nb201", _csv(f"arch,latency_ms\n{ARCH},NaN\n")),
    Case("table-columns", "table", IMPORT, "nb201", _csv(f"arch,ms\n{ARCH},2\n")),
    Case("table-missing", "table", IMPORT, "nb201"),
    Case("table-conflict", "table", ("import", "--run-dir", "{run}", "--target", "titanx_1", "--table", "{tmp}/t.csv"),
         "nb201", _csv(f"arch,latency_ms\n{ARCH},999\n")),
    Case("cli-table-alone", "cli", ("import", "--run-dir", "{run}", "--table", "{tmp}/t.csv"), "nb201"),
    Case("cli-select-source", "cli", ("select", "--run-dir", "{run}", "--target", "phone", "--num-archs", "10",
         "--transfer-from", "titanx_1,tpu_v9", "--out", "{tmp}/pick.jsonl"), "nb201"),
    Case("cli-select-out-exists", "cli", ("select", "--run-dir", "{run}", "--target", "phone", "--num-archs", "10",
         "--transfer-from", "titanx_1", "--out", "{tmp}/pick.jsonl"), "nb201", lambda t: _write(t / "pick.jsonl", "x")),
    Case("cli-predict-unfitted", "cli", ("predict", "--run-dir", "{run}", "--target", "titanx_1", "--genotypes",
         "{tmp}/g.jsonl"), "nb201", _genotypes([json.dumps(ARCH)])),
    Case("cli-nb201-sampling", "cli", ("measure", "--config", "configs/nb201.yaml", "--run-dir", "{run}",
         "--num-archs", "5"), "nb201"),
]  # fmt: skip


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _documented() -> dict[str, tuple[str, str]]:
    """Case id -> (message, exit code) from the docs' table."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([\w-]+)` \| \w+ \| `` (.*) `` \| `` lanas: error: (.*) `` \| (\d+) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(3).replace("\\|", "|"), m.group(4))
    return rows


def test_the_docs_table_lists_every_case_and_at_least_25():
    assert sorted(_documented()) == sorted(c.id for c in CASES) and len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_bad_input_is_one_line_exit_2_and_nothing_written(case, tmp_path, request, capsys, monkeypatch):
    from lanas_pipeline import cli

    run = tmp_path / "run"
    if case.base == "nb201":
        shutil.copytree(request.getfixturevalue("nb201_run"), run)
    elif case.base != "fresh":
        from conftest import copy_fitted

        source = request.getfixturevalue("fitted")[0] if case.base == "fitted" else None
        if source is not None:
            copy_fitted(source, run)
        else:
            shutil.copytree(request.getfixturevalue("measured_run").path, run)
    case.setup(tmp_path)
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    before = _snapshot(tmp_path)
    argv = [a.format(run=run, tmp=tmp_path) for a in case.argv]
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lanas: error: "), (code, err)
    assert _snapshot(tmp_path) == before, "a refused command wrote, moved or deleted a file"
    message = err[0].removeprefix("lanas: error: ").replace(str(run), "<run>").replace(str(tmp_path), "<tmp>")
    message = message.replace(str(ROOT), "<repo>")
    measured = [] if case.base == "nb201" else (run / "measure" / "dataset").glob("hardware=*")
    for part in measured:  # the host's CPU is in the hardware id
        message = message.replace(part.name.split("=", 1)[1], "<hardware>")
    if os.environ.get("LANAS_BAD_INPUTS_ROWS"):
        with open(os.environ["LANAS_BAD_INPUTS_ROWS"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": case.id, "what": case.what, "argv": case.argv, "message": message}) + "\n")
    assert _documented().get(case.id) == (message, "2"), f"docs/bad-inputs.md should show: {message}"


def render(rows_file: str) -> str:
    """The table of docs/bad-inputs.md from the rows a run wrote (in CASES order)."""
    rows = {r["id"]: r for r in map(json.loads, Path(rows_file).read_text().splitlines())}
    out = ["| case | input | command | message | exit |", "|---|---|---|---|---|"]
    for c in CASES:
        r = rows[c.id]
        cmd = "lanas " + " ".join(a.format(run="<run>", tmp="<tmp>") for a in c.argv)
        msg = r["message"].replace("|", "\\|")
        out.append(f"| `{c.id}` | {c.what} | `` {cmd} `` | `` lanas: error: {msg} `` | 2 |")  # `` ``: spans with `
    return "\n".join(out)


if __name__ == "__main__":
    print(render(sys.argv[1]))
