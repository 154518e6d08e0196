"""The tests' layout holds: tests/X mirrors the folder X, every folder is a package, no sys.path edits.

Every test folder being a package makes each module `tests.X.Y`, so two folders may hold files of the same
name and helpers are imported by their full name (`tests.support.NAME`), never found through sys.path.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS.parent
NOT_MIRRORS = {
    "support": "helpers shared by more than one folder",
    "delivery": "what ships the code: Dockerfiles, compose, locks, workflows, infra/",
}


def _test_folders() -> list[Path]:
    return sorted({path.parent for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts} - {TESTS})


def test_each_test_folder_mirrors_a_folder_of_the_repository() -> None:
    strays = []
    for folder in _test_folders():
        relative = folder.relative_to(TESTS)
        if relative.parts[0] in NOT_MIRRORS:
            continue
        if not (REPO_ROOT / relative).is_dir():
            strays.append(str(relative))
    assert not strays, f"tests/X must test the folder X (or be one of {sorted(NOT_MIRRORS)}): {strays}"


def test_every_test_folder_is_a_package() -> None:
    missing = [str(folder.relative_to(REPO_ROOT)) for folder in [TESTS, *_test_folders()]]
    missing = [name for name in missing if not (REPO_ROOT / name / "__init__.py").is_file()]
    assert not missing, f"add an __init__.py (modules are imported as tests.X.Y): {missing}"


def _edits_sys_path(statement: ast.stmt) -> bool:
    """A module-level `sys.path.insert/append/extend(...)` or `sys.path[...] = ...` / `sys.path = ...`."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        target = statement.value.func
        return isinstance(target, ast.Attribute) and ast.unparse(target.value) == "sys.path"
    if isinstance(statement, ast.Assign | ast.AugAssign):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return any(ast.unparse(t).startswith("sys.path") for t in targets)
    return False


def test_no_test_module_edits_sys_path_to_find_helpers() -> None:
    editing = [
        str(path.relative_to(REPO_ROOT))
        for path in sorted(TESTS.rglob("*.py"))
        if any(_edits_sys_path(statement) for statement in ast.parse(path.read_text()).body)
    ]
    assert not editing, f"import helpers as tests.support.NAME instead: {editing}"


def test_the_sys_path_check_sees_the_edits_it_forbids() -> None:
    for source in (
        "sys.path.insert(0, 'x')",
        "sys.path.append('x')",
        "sys.path[:0] = ['x']",
        "sys.path += ['x']",
    ):
        assert _edits_sys_path(ast.parse(source).body[0]), source
    assert not _edits_sys_path(ast.parse("path = list(sys.path)").body[0])
