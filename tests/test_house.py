"""House rules that keep the code easy to see, checked on the source (no Ray, no torch):
no import circle between the project's modules, no function-level import of one (except
the command line's, which keeps `lanas --help` from importing torch and Ray), no function
over 45 lines, and no Ray in the plain-PyTorch library."""

import ast
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


def _project_import(node, names):
    """The project modules an import statement names (``from pipeline import x`` may name one)."""
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
        subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in names]
        return subs or [node.module]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] in PACKAGES]
    return []


def test_no_import_circle_and_no_function_level_import_of_the_project():
    modules = list(_modules())
    names = {name for name, _, _ in modules}
    graph, late = {}, []
    for name, path, tree in modules:
        graph[name] = {m for node in tree.body for m in _project_import(node, names) if m in names}
        for f in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(f):
                if _project_import(node, names) and str(path.relative_to(ROOT)) not in LAZY:
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
