"""House rules that keep the code easy to see, checked on the source (no Ray, no torch):
no import circle between the project's modules, no function-level import of one (except
the command line's, which keeps `lanas --help` from importing torch and Ray), no function
over 45 lines, no Ray in the plain-PyTorch library, and the folder `pipeline/` importing
itself only relatively (installed as `lanas_pipeline`, run from an uploaded job directory
as `pipeline`)."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lanas", "pipeline")
LAZY = {"pipeline/cli.py", "pipeline/stages.py"}  # entry points: import a stage only when it runs
MAX_LINES = 45


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            yield name, path, ast.parse(path.read_text())


def _package_of(path: Path) -> str:
    return ".".join(path.parent.relative_to(ROOT).parts)


def _project_import(node, names, path: Path):
    """The project modules an import statement names (``from . import x`` may name one);
    a relative import is resolved from ``path``'s package."""
    if isinstance(node, ast.ImportFrom) and node.level:
        base = _package_of(path).split(".")
        base = ".".join(base[: len(base) - node.level + 1])
        module = f"{base}.{node.module}" if node.module else base
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
        module = node.module
    elif isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
    else:
        return []
    subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in names]
    return subs or [module]


def test_no_import_circle_and_no_function_level_import_of_the_project():
    modules = list(_modules())
    names = {name for name, _, _ in modules}
    graph, late = {}, []
    for name, path, tree in modules:
        graph[name] = {m for node in tree.body for m in _project_import(node, names, path) if m in names}
        for f in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(f):
                if _project_import(node, names, path) and str(path.relative_to(ROOT)) not in LAZY:
                    late.append(f"{path.relative_to(ROOT)}:{node.lineno} in {f.name}")
    assert not late, late
    state, cycle = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycle.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycle, cycle


def test_no_function_over_45_lines_and_no_ray_in_the_library():
    functions = [(p, n) for _, p, tree in _modules() for n in ast.walk(tree)
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]  # fmt: skip
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1})"
            for p, n in functions if n.end_lineno - n.lineno + 1 > MAX_LINES]  # fmt: skip
    assert not long, long
    ray = [str(p.relative_to(ROOT)) for name, p, tree in _modules() if name.startswith("lanas")
           for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
           and any((a.name if isinstance(n, ast.Import) else (n.module or "")).split(".")[0] == "ray"
                   for a in (n.names if isinstance(n, ast.Import) else [n]))]  # fmt: skip
    assert not ray, ray


def test_pipeline_imports_itself_relatively_and_installs_as_lanas_pipeline():
    """Every package folder is installed (pyproject's explicit list), pipeline/ under the
    name lanas_pipeline; inside pipeline/ no absolute import of either name."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert tool["package-dir"] == {"lanas_pipeline": "pipeline"}
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts) for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")
    }
    assert set(tool["packages"]) == {f.replace("pipeline", "lanas_pipeline", 1) if f.startswith("pipeline") else f
                                     for f in folders}  # fmt: skip
    absolute = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in (ROOT / "pipeline").rglob("*.py")
                for n in ast.walk(ast.parse(p.read_text()))
                if (isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").split(".")[0]
                    in ("pipeline", "lanas_pipeline"))
                or (isinstance(n, ast.Import) and any(a.name.split(".")[0] in ("pipeline", "lanas_pipeline")
                                                      for a in n.names))]  # fmt: skip
    assert not absolute, absolute


# What a Ray worker imports to run its function: every Tune trial, Train worker and task
# process pays it again (measured: the trial's module took 8.4 s to import with onnx,
# scipy and the stage packages, 4.4 s without, torch alone 3.6 s)
WORKER_MODULES = {
    "lanas_pipeline.search.trainable": ("onnx", "scipy", "sklearn", "matplotlib", "pandas", "pyarrow.dataset"),
    "lanas_pipeline.fit.train": ("onnx", "scipy", "sklearn", "matplotlib"),
    "lanas_pipeline.evaluate": ("onnx", "scipy", "sklearn", "matplotlib"),
    "lanas_pipeline.measure": ("scipy", "sklearn", "matplotlib"),
}


def test_the_modules_ray_workers_run_do_not_import_what_they_never_use():
    """One fresh interpreter imports them in this order (each forbids at least what the
    next does, so what one imports cannot fail a later one's check)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        f"for m, heavy in {WORKER_MODULES!r}.items():\n"
        "    __import__(m)\n"
        "    print(m, [h for h in heavy if h in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"{m} []" for m in WORKER_MODULES], out
