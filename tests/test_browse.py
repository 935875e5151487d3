"""``lanas runs`` and ``lanas show`` on run directories laid out as the stages write them (no Ray)."""

import json

from conftest import smoke_config

from lanas_pipeline.cli import main
from lanas_pipeline.config import dump_config
from lanas_pipeline.report.tables import write_csv


def _row(name, kind, lam, acc, ms, on_front=False):
    return {"target": "cpu-t1-torch-b1", "name": name, "kind": kind, "method": "ladnas" if kind == "searched" else None,
            "searched_for": None, "lam": lam, "budget_ms": None, "seed": 0, "test_acc": acc,
            "measured_latency_ms": ms, "predicted_latency_ms": ms * 1.02, "on_front": on_front}  # fmt: skip


def _run(root, name, stages):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(smoke_config(name=name)))
    for s in stages:
        (run / s).mkdir()
        (run / s / "DONE.json").write_text("{}")
    return run


def test_runs_lists_each_run_with_its_stages_and_show_prints_the_front(tmp_path, capsys):
    _run(tmp_path, "half", ["measure", "fit"])
    run = _run(tmp_path, "whole", ["measure", "fit", "search", "evaluate", "report"])
    rows = [_row("lam0-seed0", "searched", 0.0, 0.91, 5.0, True), _row("lam2-seed0", "searched", 2.0, 0.88, 3.0, True),
            _row("lam1-seed0", "searched", 1.0, 0.85, 4.0), _row("trivial", "baseline", None, 0.70, 2.0)]  # fmt: skip
    write_csv(run / "report" / "pareto.csv", rows)
    (run / "fit" / "cpu-X-t1-torch-b1").mkdir()
    predictor = {"hardware": "cpu-X-t1-torch-b1", "selection": {"chosen": "additive"}, "rows": {"train": 40},
                 "test": {"mape": 0.0312, "kendall_tau": 0.81}, "transferred_from": None}  # fmt: skip
    (run / "fit" / "cpu-X-t1-torch-b1" / "predictor.json").write_text(json.dumps(predictor))

    assert main(["runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["run", "state", "m"]
    by_name = {line.split()[0]: line for line in out[2:]}
    assert "complete" in by_name["whole"] and "x x x x x" in by_name["whole"]
    assert "fit done" in by_name["half"] and "x x . . ." in by_name["half"] and "cpu-t1-torch-b1" in by_name["half"]

    assert main(["show", str(run)]) == 0
    text = capsys.readouterr().out
    front = text.split("Front on cpu-t1-torch-b1")[1].split("Predictors:")[0]
    assert "lam0-seed0" in front and "lam2-seed0" in front and "trivial" in front
    assert "lam1-seed0" not in front  # dominated: not on the front
    assert front.index("trivial") < front.index("lam2-seed0") < front.index("lam0-seed0")  # by latency
    assert "91.0" in front and "3.06" in front  # accuracy in %, predicted ms
    assert "cpu-X-t1-torch-b1  additive  40" in text and "3.12" in text


def test_show_and_runs_refuse_what_is_not_a_run(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"lanas: error: {tmp_path} is not a run directory (no config.yaml)"
    assert main(["runs", str(tmp_path / "nothing")]) == 2
    assert "is not a folder of runs" in capsys.readouterr().err
    assert main(["runs", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"no runs under {tmp_path}")
