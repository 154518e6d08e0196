"""Imports run one way: the layers docs/architecture.md lists, checked on every module of the repository.

Each module's imports are read with `ast` (imports inside functions and `importlib.import_module("...")`
calls included, relative imports resolved), so a lazy import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = REPO_ROOT / "docs" / "architecture.md"
SKIPPED_FOLDERS = {".venv", "var", "build", "node_modules", "notebooks"}


@dataclass(frozen=True)
class Violation:
    """One import that runs against the layering."""

    module: str
    line: int
    imported: str
    reason: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.reason}"


def read_layers(markdown: str) -> list[list[str]]:
    """The numbered list under '## Layers', lowest first: each item's leading `module` names."""
    section = markdown.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    layers = []
    for item in re.findall(r"^\d+\.\s+(.*)$", section, flags=re.MULTILINE):
        lead = item.split(":", 1)[0]
        layers.append([name.rstrip("/").replace("/", ".") for name in re.findall(r"`([\w./]+)`", lead)])
    return layers


def module_name(path: Path, root: Path) -> str:
    """`worker/detection/explain.py` -> `worker.detection.explain`; a package's `__init__` is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the source, wherever it sits.

    `from a import b` counts as importing `a.b` when that is a module of the tree, else as importing `a`.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            for alias in node.names:
                submodule = root / name.replace(".", "/") / alias.name
                is_module = submodule.with_suffix(".py").is_file() or submodule.is_dir()
                found.append((node.lineno, f"{name}.{alias.name}" if is_module else name))
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in {"importlib.import_module", "import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def unit_of(module: str, units: dict[str, int]) -> str | None:
    """The most specific listed unit the module belongs to (`worker.detection` before `worker`)."""
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        if ".".join(parts[:depth]) in units:
            return ".".join(parts[:depth])
    return None


def python_files(root: Path) -> list[Path]:
    """Every .py file of the tree but virtualenvs, runtime state, build output and hidden folders."""
    return sorted(
        path
        for path in root.rglob("*.py")
        if not any(part in SKIPPED_FOLDERS or part.startswith(".") for part in path.relative_to(root).parts)
        and not any(part.endswith(".egg-info") for part in path.relative_to(root).parts)
    )


def check_layering(root: Path, layers: list[list[str]]) -> tuple[list[str], list[Violation]]:
    """Modules no layer names, and the imports that run up the layers or across one."""
    units = {unit: index for index, layer in enumerate(layers) for unit in layer}
    unlayered: list[str] = []
    violations: list[Violation] = []
    for path in python_files(root):
        module = module_name(path, root)
        own = unit_of(module, units)
        if own is None:
            unlayered.append(module)
            continue
        source = path.read_text(encoding="utf-8")
        for line, imported in imported_modules(source, module, path.name == "__init__.py", root):
            target = unit_of(imported, units)
            if target is None or target == own:
                continue
            if units[target] > units[own]:
                violations.append(Violation(module, line, imported, f"{target} is a higher layer than {own}"))
            elif units[target] == units[own]:
                violations.append(Violation(module, line, imported, f"{target} and {own} share a layer"))
    return unlayered, violations


def test_the_architecture_states_the_layers() -> None:
    layers = read_layers(ARCHITECTURE.read_text(encoding="utf-8"))
    assert layers[0] == ["buzzwatch"], layers
    assert ["stack"] in layers
    assert all(layers), f"a layer without `module` names: {layers}"


def test_every_module_sits_in_a_layer_and_imports_only_below_it() -> None:
    layers = read_layers(ARCHITECTURE.read_text(encoding="utf-8"))
    unlayered, violations = check_layering(REPO_ROOT, layers)
    assert not unlayered, f"modules in no layer of docs/architecture.md: {unlayered}"
    assert not violations, "imports against the layering:\n" + "\n".join(map(str, violations))


def test_the_check_finds_an_upward_import_hidden_in_a_function(tmp_path: Path) -> None:
    """The same check on a small tree with one violation of each kind, so it cannot pass vacuously."""
    files = {
        "core/__init__.py": "",
        "core/settings.py": "import json\n\ndef load():\n    from service.app import run\n    return run\n",
        "core/plugins.py": "import importlib\n\nCLI = importlib.import_module('service.cli')\n",
        "service/app.py": "from core.settings import load\nfrom . import cli\n",
        "service/cli.py": "from other.app import helper\n",
        "other/app.py": "from ..service import app\n",
        "loose.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    unlayered, violations = check_layering(tmp_path, [["core"], ["service", "other"]])
    assert unlayered == ["loose"]
    assert {(v.module, v.imported) for v in violations} == {
        ("core.settings", "service.app"),  # upward, inside a function
        ("core.plugins", "service.cli"),  # upward, by name
        ("service.cli", "other.app"),  # across a layer
        ("other.app", "service.app"),  # across, relative
    }
