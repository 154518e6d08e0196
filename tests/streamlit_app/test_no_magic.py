"""No page writes by accident: Streamlit's "magic" puts any bare expression of a page's script on the page
(`zones(), names()` once showed two raw dicts at the top of Watch it). Calls are left alone, as by magic."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "streamlit_app"
SCRIPTS = [APP / "app.py", *sorted((APP / "views").glob("*.py"))]


def written_by_magic(source: str) -> list[str]:
    """The script-level expression statements magic would write (not inside a function or a class)."""
    found: list[tuple[int, str]] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Call):
                docstring = isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                if not docstring:
                    found.append((node.lineno, f"line {node.lineno}: {ast.unparse(node)}"))
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ExceptHandler):
                    visit(child.body)
            for field in ("body", "orelse", "finalbody"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    visit(block)

    visit(ast.parse(source).body)
    return [line for _, line in sorted(found)]


def test_the_rule_finds_what_magic_writes() -> None:
    source = '"""doc"""\nst.title("x")\nzones()\ntry:\n    zones(), names()\nexcept E:\n    frame\n'
    assert written_by_magic(source) == ["line 5: (zones(), names())", "line 7: frame"]
    assert written_by_magic("def f():\n    value\nclass C:\n    value\n") == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_page_script_has_a_bare_expression(script: Path) -> None:
    assert written_by_magic(script.read_text()) == []
