"""Every figure block in README.md and docs/ is what its results file renders to
(``benchmarks/figures.py``): a re-recording without ``figures.py --write``, or a hand
edit of a quoted figure, fails here."""

import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import figures  # noqa: E402


def _quoted():
    for doc in figures.DOCS:
        for name, body in figures.blocks(doc.read_text()).items():
            yield pytest.param(name, body, id=f"{doc.name}:{name}")


@pytest.mark.parametrize("name, body", list(_quoted()))
def test_quoted_block_is_rendered_from_its_results_file(name, body):
    assert name in figures.RENDERERS, f"no renderer for block {name!r}"
    assert body == figures.RENDERERS[name](), f"{name}: run `.venv/bin/python benchmarks/figures.py --write`"


def test_every_renderer_is_quoted_somewhere():
    quoted = {name for doc in figures.DOCS for name in figures.blocks(doc.read_text())}
    assert quoted == set(figures.RENDERERS)
