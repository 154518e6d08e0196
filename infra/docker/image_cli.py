"""The `buzzwatch` command inside a slim image: only the subcommands of the components the image contains.

`buzzwatch.cli` registers every component's CLI module; a serving image copies only its own component
(the ingest image has no api/, the API image no training code), so this entry point drops the components whose
package is not there and runs the same `main`. Copied into the images as /app/image_cli.py.
"""

from __future__ import annotations

import importlib.util
import sys

from buzzwatch import cli


def module_exists(name: str) -> bool:
    """Whether `name` can be imported here, without importing it (its parent packages are imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def present_components(module_names: tuple[str, ...]) -> tuple[str, ...]:
    """The CLI modules that exist in this image."""
    return tuple(name for name in module_names if module_exists(name))


if __name__ == "__main__":
    cli.COMPONENT_CLIS = present_components(cli.COMPONENT_CLIS)
    sys.exit(cli.main())
