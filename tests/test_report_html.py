"""report.html: one self-contained page (figures embedded, tables sortable), checked in a
real headless Chromium: it loads without a console error and its screenshot shows the front."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from lanas_pipeline.report.html import render
from lanas_pipeline.report.plots import plot

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _row(name, kind, lam, acc, ms, on_front=False):
    return {"name": name, "kind": kind, "lam": lam, "seed": 0, "test_acc": acc, "measured_latency_ms": ms,
            "budget_ms": None, "on_front": on_front}  # fmt: skip


def _report(folder):
    rows = [_row("lam0-seed0", "searched", 0.0, 0.91, 5.0, True), _row("lam0.3", "searched", 0.3, 0.88, 3.0, True),
            _row("trivial", "baseline", None, 0.70, 2.0), _row("darts_v2", "published", None, 0.9, 6.0)]  # fmt: skip
    plot(folder / "pareto.png", {"cpu-t1-torch-b1": rows}, {"cpu-t1-torch-b1": "cpu-X-t1-torch-b1"})
    text = ("# Report\n\n![Pareto fronts](pareto.png)\n\n| candidate | test acc | ms |\n|---|---|---|\n"
            "| b | 91.0 | 5.0 |\n| a | 88.0 | 3.0 |\n| c | 70.0 | 12.0 |\n")  # fmt: skip
    page = folder / "report.html"
    page.write_text(render(folder, text, "lanas report: test"))
    return page


def test_the_page_is_self_contained_with_captions_and_sortable_tables(tmp_path):
    text = _report(tmp_path).read_text()
    assert "data:image/png;base64," in text and "How to read it: one panel per target" in text
    assert "<table>" in text and 'addEventListener("click"' in text
    assert "http://" not in text and "https://" not in text  # nothing is fetched
    assert 'src="pareto.png"' not in text


def _chromium(*args, timeout=120):
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=3000", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _console_errors(stderr):
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's chromium)")
def test_the_page_loads_in_chromium_without_console_errors_and_shows_the_front(tmp_path):
    broken = tmp_path / "broken.html"  # the check can fail: a page with a script error is caught
    broken.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    assert _console_errors(_chromium("--dump-dom", broken.as_uri()).stderr)

    page = _report(tmp_path)
    r = _chromium("--dump-dom", page.as_uri())
    assert r.returncode == 0 and not _console_errors(r.stderr), r.stderr[-2000:]
    assert "<figcaption>How to read it" in r.stdout
    shot = tmp_path / "shot.png"
    r = _chromium(f"--screenshot={shot}", "--window-size=1200,1400", page.as_uri())
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 90) & (pixels[..., 2] < 90)  # the front's red staircase
    assert red.sum() > 200, red.sum()
