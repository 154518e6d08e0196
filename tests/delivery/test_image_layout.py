"""Each image's /app tree, rebuilt from its COPY lines in a temporary folder, imports and starts.

Images cannot be built here (no Docker engine); this is the closest real check: the very files an image
would contain, and nothing else of the repository, run with this virtualenv's packages.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from .dockerfiles import IMAGES, ServiceImage
from .helpers import REPO_ROOT
from .layout import build_layout, run_in_layout


def _declared_commands() -> dict[str, str]:
    """Subcommand -> the module that registers it, as pyproject.toml declares them."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        table = tomllib.load(handle)["project"]["entry-points"]["buzzwatch.commands"]
    return {name: value.split(":")[0] for name, value in table.items()}


@pytest.mark.parametrize(
    "image",
    [i for i in IMAGES if i.name in {"ingest", "api", "worker", "train"}],
    ids=lambda image: image.name,
)
def test_the_buzzwatch_command_in_the_image_lists_its_own_subcommands(image: ServiceImage, tmp_path: Path):
    app = build_layout(image, tmp_path)
    run = "runpy.run_path('image_cli.py', run_name='__main__')"
    result = run_in_layout(app, f"import runpy; sys.argv = ['buzzwatch', '--help']; {run}", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    declared = _declared_commands()
    shipped = {
        name for name, module in declared.items() if (app / (module.replace(".", "/") + ".py")).is_file()
    }
    assert {"ingest": "ingest", "api": "api", "worker": "worker", "train": "train"}[image.name] in shipped
    listed = set(re.findall(r"^ {4}(\S+)", result.stdout.split("options:")[0], flags=re.MULTILINE))
    assert listed == shipped, result.stdout
    absent = sorted(set(declared) - shipped)
    assert "demo" in absent  # the local stack is in no image
    assert "unavailable here: " in result.stdout
    for name in absent:  # each one says why instead of argparse's "invalid choice"
        ran = run_in_layout(app, f"import runpy; sys.argv = ['buzzwatch', {name!r}, '--x']; {run}", tmp_path)
        assert ran.returncode == 2, ran.stdout + ran.stderr
        assert f"buzzwatch {name}: unavailable here: {declared[name]}:" in ran.stderr
        assert "Traceback" not in ran.stderr


def test_the_api_image_builds_its_app_from_the_shipped_champion(tmp_path: Path):
    image = next(i for i in IMAGES if i.name == "api")
    app = build_layout(image, tmp_path)
    result = run_in_layout(
        app,
        "from api.app import create_app; "
        "client = create_app().test_client(); "
        "assert client.get('/readyz').status_code == 200; "
        "response = client.post('/v1/predict', json={'text': 'flight cancelled, worst airline ever'}); "
        "assert response.status_code == 200, response.get_data(as_text=True); "
        "print(response.get_json())",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "negative" in result.stdout or "label" in result.stdout
