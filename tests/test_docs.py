"""The docs' runnable parts: the library tour in docs/usage.md runs as a doctest."""

import doctest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_library_tour_runs_as_written():
    result = doctest.testfile(str(ROOT / "docs" / "usage.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0


def test_every_relative_link_in_the_docs_exists():
    import re

    docs = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            path = target.split("#")[0]
            if path and "://" not in path and not (doc.parent / path).exists():
                missing.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not missing, missing


def test_the_readme_stays_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 150
    assert lines[2:6] == ["```bash", lines[3], lines[4], "```"] and lines[3].startswith("make demo")
    assert lines[4].startswith("make test")
