"""What an image's Python code imports: the files each Dockerfile copies, followed from its entry points.

No Docker engine runs here, so the tests rebuild each image's /app tree on paper from its COPY lines, then
follow every import (module level and inside functions) from the entry modules. A repository module the
image does not contain, or a third-party package its requirements file does not bring, is a broken image.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

from .dockerfiles import Instruction, copy_sources, dockerignore_patterns, is_ignored, parse_dockerfile
from .helpers import REPO_ROOT

LOCAL_PACKAGES = frozenset({"buzzwatch", "models", "api", "worker", "ingest", "streamlit_app", "stack"})


def image_files(dockerfile: Path) -> dict[str, Path]:
    """Path inside the image (relative to WORKDIR) -> the repository file it comes from."""
    instructions: list[Instruction] = parse_dockerfile(dockerfile)
    patterns = dockerignore_patterns()
    workdir = PurePosixPath("/")
    files: dict[str, Path] = {}
    app_root = None
    for instruction in instructions:
        if instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.arguments.strip()
            app_root = app_root or workdir
        if instruction.keyword != "COPY":
            continue
        sources = copy_sources(instruction)
        destination = PurePosixPath(instruction.arguments.split()[-1].strip('"'))
        destination = destination if destination.is_absolute() else workdir / destination
        to_directory = instruction.arguments.rstrip().endswith("/") or len(sources) > 1
        for source in sources:
            path = REPO_ROOT / source
            if path.is_dir():
                for item in sorted(path.rglob("*")):
                    relative = item.relative_to(REPO_ROOT).as_posix()
                    if item.is_file() and not is_ignored(relative, patterns):
                        files[str(destination / item.relative_to(path).as_posix())] = item
            elif path.is_file():
                target = destination / path.name if to_directory else destination
                files[str(target)] = path
    root = str(app_root or workdir)
    return {
        str(PurePosixPath(name).relative_to(root)): repo_path
        for name, repo_path in files.items()
        if name.startswith(root.rstrip("/") + "/")
    }


def _module_file(module: str, files: dict[str, Path]) -> str | None:
    base = module.replace(".", "/")
    for candidate in (f"{base}.py", f"{base}/__init__.py"):
        if candidate in files:
            return candidate
    return None


def _in_repo(module: str) -> bool:
    base = REPO_ROOT / module.replace(".", "/")
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under `if TYPE_CHECKING:` (never imported at run time)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names imported from it) for every import run at some point, relative ones resolved."""
    found = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".")
                base = parts if is_package else parts[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((name, tuple(alias.name for alias in node.names)))
    return found


@dataclass
class ImportReport:
    """What following the imports found."""

    missing_local: dict[str, str] = field(default_factory=dict)  # module -> imported by
    third_party: dict[str, str] = field(default_factory=dict)  # top-level name -> imported by
    visited: set[str] = field(default_factory=set)


def follow_imports(entries: list[str], files: dict[str, Path], optional: frozenset[str]) -> ImportReport:
    """Follow imports from the entry modules through the image's files.

    `optional` lists module prefixes imported lazily for features the image does not use (never followed).
    """
    report = ImportReport()
    pending = [(entry, "<entry point>") for entry in entries]
    while pending:
        module, importer = pending.pop()
        if module in report.visited or any(module == o or module.startswith(o + ".") for o in optional):
            continue
        report.visited.add(module)
        top = module.split(".")[0]
        parts = module.split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first (absent ones: namespace packages).
        pending.extend((".".join(parts[:depth]), importer) for depth in range(1, len(parts)))
        relative = _module_file(module, files)
        folder = REPO_ROOT / module.replace(".", "/")
        if (
            relative is None
            and top in LOCAL_PACKAGES
            and folder.is_dir()
            and not (folder / "__init__.py").exists()
        ):
            continue  # a namespace package: nothing to copy
        if relative is None:
            if top in LOCAL_PACKAGES or _in_repo(module):
                report.missing_local[module] = importer
            elif top not in sys.stdlib_module_names and top != "__future__":
                report.third_party.setdefault(top, importer)
            continue
        tree = ast.parse(files[relative].read_text(encoding="utf-8"))
        for name, names in _imports(tree, module, relative.endswith("__init__.py")):
            if not name:
                continue
            pending.append((name, module))
            for item in names:
                submodule = f"{name}.{item}"
                if _module_file(submodule, files) or (
                    name.split(".")[0] in LOCAL_PACKAGES and _in_repo(submodule)
                ):
                    pending.append((submodule, module))
    return report


def distributions_for(import_names: set[str]) -> dict[str, set[str]]:
    """Top-level import name -> the installed distributions that provide it."""
    mapping = metadata.packages_distributions()
    return {name: {canonicalize_name(dist) for dist in mapping.get(name, [])} for name in import_names}
