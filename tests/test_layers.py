"""Issue 13 §4: layers point one way. Top to bottom: the app (relance.cli, relance.preview,
relance.sample_data) → flows → tasks → the core (relance/core), which imports nothing of the
others. The import-linter contract of pyproject.toml holds it; these tests run it, and check what
it cannot see: the core imports nothing but itself, `relance/__init__.py` imports nothing of the
project, and the product holds no benchmark or test code."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("relance", "flows", "tasks", "bench", "tests")


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the project in a file, at any depth (lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["<relative import>"]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in PROJECT or n.startswith("<")]
    return found


def test_the_import_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    env = os.environ | {"PYTHONPATH": str(ROOT)}  # this checkout, whichever one the venv installed
    done = subprocess.run(
        [str(lint), "--no-cache", "--no-logo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_core_imports_only_itself():
    core = ROOT / "relance" / "core"
    files = sorted(core.rglob("*.py"))
    assert {f.stem for f in files} >= {"errors", "dates", "policy", "settings", "urls", "phones", "paths"}
    wrong = [
        f"{f.relative_to(ROOT)}:{line} imports {name}"
        for f in files
        for line, name in project_imports(f)
        if not (name == "relance.core" or name.startswith("relance.core."))
    ]
    assert not wrong, "\n".join(wrong)


def test_the_package_root_imports_nothing_of_the_project():
    assert project_imports(ROOT / "relance" / "__init__.py") == []


def test_the_product_holds_no_benchmark_or_test_code():
    product = [f for pkg in ("relance", "flows", "tasks") for f in sorted((ROOT / pkg).rglob("*.py"))]
    assert not [f for f in product if f.stem.startswith("bench")]
    wrong = [
        f"{f.relative_to(ROOT)}:{line} imports {name}"
        for f in product
        for line, name in project_imports(f)
        if name.split(".")[0] in ("bench", "tests")
    ]
    assert not wrong, "\n".join(wrong)
