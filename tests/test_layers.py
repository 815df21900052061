"""The layers of README "Layout", as the import-linter contracts in pyproject.toml state them:
a wrong import (core importing a service, a service importing a workflow, ...) fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SERVICES = sorted((ROOT / "portico" / "services").glob("*.py"))


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_every_layer_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_a_core_module_importing_a_service_breaks_a_contract(tmp_path: Path) -> None:
    """The contracts really bite: the same configuration over a copy of the tree with one
    wrong import in core reports it."""
    tree = tmp_path / "tree"
    for package in ("portico", "web", "bots", "activities", "workflows"):
        for source in (ROOT / package).rglob("*.py"):
            target = tree / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    (tree / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    money = tree / "portico" / "money.py"
    money.write_text(money.read_text() + "\nfrom portico.services import billing  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "portico.money -> portico.services.billing" in result.stdout


def test_services_name_workflows_instead_of_importing_them() -> None:
    for path in SERVICES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module in ("workflows", "workflows.types") or not (
                    node.module.startswith("workflows")
                ), f"{path.name} imports {node.module}"
                if node.module == "workflows":
                    assert [a.name for a in node.names] == ["search_attributes"], path.name
