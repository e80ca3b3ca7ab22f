"""Import rules: `import ember` stays light, nothing shadows the standard library, and the
runtime keeps the layout of docs/architecture.md (one package per process over two shared
leaves, no import cycles, modules of a readable size).

`make lint` checks the runtime's rules with import-linter too; they are checked here from the
source so that `make test` alone keeps them, including imports under ``TYPE_CHECKING``.
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "runtime"
PROCESS_PACKAGES = ("core", "node", "head")
LEAVES = ("objects", "wire")  # objects may import wire, not the other way
MAX_LINES = 600


def test_import_ember_does_not_import_kubernetes_or_kopf():
    code = (
        "import sys, ember; "
        "print(sorted(m for m in ('kopf', 'kubernetes', 'ember.operator') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stdlib_operator_is_not_shadowed_from_the_repository_root():
    # `python -m` puts the current directory first on sys.path.
    out = subprocess.run(
        [sys.executable, "-m", "json.tool", "--help"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert not (REPO / "operator" / "__init__.py").exists()


def test_operator_uses_only_the_wire_protocol_of_the_runtime():
    # import-linter cannot see ember.operator (a namespace package: grimp skips it), so the
    # rule is checked here on the source: the operator talks to a head as any client would.
    import ast

    offending = []
    for path in sorted((REPO / "operator").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            for name in names:
                inside = name == "ember.runtime" or name.startswith("ember.runtime.")
                if inside and not name.startswith("ember.runtime.wire"):
                    offending.append(f"{path.name}: {name}")
    assert offending == []


def _runtime_modules() -> dict[str, Path]:
    modules = {}
    for path in RUNTIME.rglob("*.py"):
        if "_pb2" in path.name:
            continue  # generated
        parts = list(path.relative_to(RUNTIME).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(["ember.runtime", *parts])] = path
    return modules


def _imports(module: str, path: Path) -> set[str]:
    """Every ember module this one imports, at any depth of the file (TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level] if path.name != "__init__.py" else (
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                )
                base = ".".join(package + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("ember.")}


def _graph() -> dict[str, set[str]]:
    modules = _runtime_modules()
    return {m: (_imports(m, p) & modules.keys()) - {m} for m, p in modules.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    inside = len(parts) > 2 and (RUNTIME / parts[2]).is_dir()
    return parts[2] if inside else ""  # "" for ember.runtime's own modules


def test_process_packages_never_import_each_other_and_leaves_import_none_of_them():
    offending = []
    for module, imported in sorted(_graph().items()):
        source = _package(module)
        for target in sorted(imported):
            dest = _package(target)
            if dest in ("", source):
                if dest == "" and source and target != "ember.runtime":
                    offending.append(f"{module} -> {target} (a package importing an entry point)")
                continue
            if source in PROCESS_PACKAGES and dest in PROCESS_PACKAGES:
                offending.append(f"{module} -> {target}")
            elif source in LEAVES and dest not in LEAVES[LEAVES.index(source) + 1 :]:
                offending.append(f"{module} -> {target}")
    assert offending == []


def test_no_import_cycle_in_the_runtime():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_runtime_modules_stay_readable():
    # Past ~600 lines a module is split by responsibility, or says at its top why not
    # ("... over 600 lines because ...").
    too_long = []
    for module, path in sorted(_runtime_modules().items()):
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and f"over {MAX_LINES} lines" not in docstring:
            too_long.append(f"{module}: {lines} lines")
    assert too_long == []
