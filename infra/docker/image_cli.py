"""The `buzzwatch` command inside an image, which copies the code without installing the project.

With no package metadata to read, the subcommands come from the same table the installed project
registers, `[project.entry-points."buzzwatch.commands"]` of the image's copy of pyproject.toml. A slim
image ships only its own component: `buzzwatch --help` lists the others as unavailable there, and
running one says why. Copied into the images as /app/image_cli.py, beside /app/pyproject.toml.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

from buzzwatch import cli

PYPROJECT = Path(__file__).resolve().parent / "pyproject.toml"


def declared_commands(pyproject: Path = PYPROJECT) -> list[EntryPoint]:
    """The subcommand entry points pyproject.toml declares."""
    with open(pyproject, "rb") as handle:
        table = tomllib.load(handle)["project"]["entry-points"][cli.COMMANDS_GROUP]
    return [EntryPoint(name=name, value=value, group=cli.COMMANDS_GROUP) for name, value in table.items()]


if __name__ == "__main__":
    sys.exit(cli.main(commands=declared_commands()))
