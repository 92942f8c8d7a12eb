"""The architecture as tests: import-linter's layer contracts (pyproject.toml) hold; every
import — at module level, inside a function or under ``if TYPE_CHECKING:`` — goes to the
same or a lower layer, and no sm_llm modules import each other in a cycle; no module
imports another module's underscore names, and no module outgrows ~500 lines."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sm_llm"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_import_contracts_are_kept() -> None:
    command = Path(sys.executable).with_name("lint-imports")
    if not command.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [str(command), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 kept, 0 broken" in done.stdout


# -- the import graph, from the source (every import statement, wherever it stands) -----


class Import(NamedTuple):
    """One import of an sm_llm module: who imports what, where (``module``, ``function``,
    ``TYPE_CHECKING``) and on which line."""

    source: str
    target: str
    where: str
    line: int


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, known: set[str], root: Path = ROOT) -> Iterator[Import]:
    """Every import of a module in ``known`` made by ``path``: ``from a import b`` is an
    import of ``a.b`` when that is a module, else of ``a``; relative imports resolved."""
    source = _module_name(path, root)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]

    def target(name: str) -> str | None:
        while name and name not in known:  # `import a.b.attr` → the module a.b
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, where: str) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = "function" if where == "module" else where
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                inner = "TYPE_CHECKING"
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in child.names]
            else:
                yield from visit(child, inner)
                continue
            for name in dict.fromkeys(names):
                found = target(name)
                if found is not None and found != source:
                    yield Import(source, found, inner, child.lineno)

    yield from visit(ast.parse(path.read_text(encoding="utf-8")), "module")


def _graph(paths: list[Path], root: Path = ROOT) -> list[Import]:
    known = {_module_name(p, root) for p in paths}
    return [found for p in paths for found in _imports(p, known, root)]


def _cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def _layers() -> dict[str, int]:
    """Each module named in the layers contract → its layer (0 = the lowest)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    ranks: dict[str, int] = {}
    for rank, layer in enumerate(reversed(contract["layers"])):
        for name in layer.replace("|", ":").split(":"):
            ranks[name.strip()] = rank
    return ranks


def _layer_of(module: str, ranks: Mapping[str, int]) -> int | None:
    while module and module not in ranks:  # a package's layer holds its modules
        module = module.rpartition(".")[0]
    return ranks.get(module)


def _upward(edges: list[Import], ranks: Mapping[str, int]) -> list[str]:
    found = []
    for edge in edges:
        low, high = _layer_of(edge.source, ranks), _layer_of(edge.target, ranks)
        if low is not None and high is not None and high > low:
            found.append(f"{edge.source}:{edge.line} imports {edge.target} ({edge.where}), a higher layer")
    return found


GRAPH = _graph(MODULES)


def test_the_import_graph_sees_every_kind_of_import() -> None:
    kinds = {edge.where for edge in GRAPH}
    assert {"module", "function"} <= kinds
    assert ("sm_llm.engine.engine", "sm_llm.engine.jobs") in {(e.source, e.target) for e in GRAPH}


def test_no_import_reaches_a_higher_layer_wherever_it_stands() -> None:
    """import-linter checks the layers too; this names the line, and states the rule that
    ``if TYPE_CHECKING:`` and function-level imports are no exception."""
    ranks = _layers()
    assert "sm_llm.engine" in ranks and "sm_llm.errors" in ranks
    assert _upward(GRAPH, ranks) == []


def test_no_import_cycle_between_sm_llm_modules() -> None:
    """Not even one closed by a TYPE_CHECKING or function-level import, inside a layer or
    a package (local/ included)."""
    cycles = _cycles(GRAPH)
    lines = [f"{e.source}:{e.line} → {e.target} ({e.where})" for e in GRAPH if any(
        e.source in c and e.target in c for c in cycles)]
    assert cycles == [], "\n".join(lines)


def test_the_graph_checks_catch_offenders(tmp_path: Path) -> None:
    """A TYPE_CHECKING import back up, and a function-level one closing a cycle, are seen."""
    package = tmp_path / "sm_llm"
    (package / "engine").mkdir(parents=True)
    for name in ("__init__.py", "errors.py", "engine/__init__.py"):
        (package / name).write_text("")
    (package / "engine/engine.py").write_text("from sm_llm.engine import jobs\n")
    (package / "engine/jobs.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sm_llm.engine.engine import Engine\n"
    )
    (package / "errors.py").write_text("def f():\n    from sm_llm.engine.jobs import x\n")
    edges = _graph(sorted(package.rglob("*.py")), tmp_path)
    assert _cycles(edges) == [["sm_llm.engine.engine", "sm_llm.engine.jobs"]]
    assert _upward(edges, {"sm_llm.engine": 1, "sm_llm.errors": 0}) == [
        "sm_llm.errors:2 imports sm_llm.engine.jobs (function), a higher layer"
    ]
    assert Import("sm_llm.engine.jobs", "sm_llm.engine.engine", "TYPE_CHECKING", 3) in edges


# -- names and sizes ----------------------------------------------------------------------


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sm_llm"):
            base = ROOT.joinpath(*node.module.split("."))
            found += [
                f"{node.module}.{a.name}" for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")  # __version__ is public
                and not (base / f"{a.name}.py").exists()  # a private module is fine
                and not (base / a.name).is_dir()
            ]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = {str(p.relative_to(ROOT)): names for p in MODULES if (names := _private_imports(p))}
    assert offenders == {}


def test_private_name_check_sees_an_offender(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from sm_llm.engine.jobs import _saved_stop\nfrom sm_llm.errors import SageMakerError\n")
    assert _private_imports(module) == ["sm_llm.engine.jobs._saved_stop"]


def test_no_module_over_500_lines() -> None:
    """Every module, local/ (the emulator) included."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in MODULES}
    assert {"sm_llm/local/_openai.py", "sm_llm/local/_server.py"} <= set(sizes)
    oversized = {name: n for name, n in sizes.items() if n > 500}
    assert oversized == {}, "split the module: one idea each"


def test_base_module_is_gone() -> None:
    assert not (PACKAGE / "_base.py").exists()
