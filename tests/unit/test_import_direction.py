"""Imports point one way: app -> stacks -> cdk_constructs -> settings -> contract; runtime code (lambdas, relay,
the hosts' userdata) imports nothing from the infrastructure side. Read from the sources' own import
statements, so a new back arrow fails here before anyone reads it in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

INFRASTRUCTURE = ("app", "stacks", "cdk_constructs", "settings")
# What each layer must never import (a top-level module or package name).
FORBIDDEN = {
    "cdk_constructs": {"app", "stacks"},
    "settings": {"app", "stacks", "cdk_constructs", "userdata"},
    "lambdas": {*INFRASTRUCTURE, "aws_cdk", "constructs"},
    "relay": {*INFRASTRUCTURE, "aws_cdk", "constructs", "lambdas", "userdata"},
    "userdata": {*INFRASTRUCTURE, "aws_cdk", "constructs"},
}
# Only these runtime modules may import the contract, which imports nothing at all.
CONTRACT_FILES = ("contract.py", "lambdas/common/contract.py")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts and not p.is_symlink())


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_upwards(layer: str) -> None:
    files = python_files(layer)
    assert files, f"no Python files under {layer}/"
    wrong = {
        f"{path.relative_to(ROOT)} imports {sorted(imported_roots(path) & FORBIDDEN[layer])}"
        for path in files
        if imported_roots(path) & FORBIDDEN[layer]
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_the_contract_imports_nothing_of_the_project() -> None:
    """It runs on the hosts (Python 3.10, standard library) and in the Lambda asset, so it stays plain."""
    source = ROOT / CONTRACT_FILES[1]
    assert imported_roots(source) <= {"__future__"}
    assert imported_roots(ROOT / CONTRACT_FILES[0]) == {"lambdas"}  # the re-export, nothing else


def test_the_check_sees_a_back_arrow(tmp_path: Path) -> None:
    """Positive control: the same reading finds an import of a stack inside a construct."""
    construct = tmp_path / "bad.py"
    construct.write_text("from stacks.fleets import FleetsStack\nimport settings\n")
    assert imported_roots(construct) & FORBIDDEN["cdk_constructs"] == {"stacks"}
