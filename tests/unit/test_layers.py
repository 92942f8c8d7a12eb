"""The architecture as tests: import-linter's layer contracts (pyproject.toml) hold, no
module imports another module's underscore names, and no module outgrows ~500 lines."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

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
    # local/ (the emulator) is outside the library's layers and checked on its own terms
    library = [p for p in MODULES if "local" not in p.relative_to(PACKAGE).parts]
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in library}
    assert {name: n for name, n in sizes.items() if n > 500} == {}, "split the module: one idea each"


def test_base_module_is_gone() -> None:
    assert not (PACKAGE / "_base.py").exists()
