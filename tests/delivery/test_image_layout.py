"""Each image's /app tree, rebuilt from its COPY lines in a temporary folder, imports and starts.

Images cannot be built here (no Docker engine); this is the closest real check: the very files an image
would contain, and nothing else of the repository, run with this virtualenv's packages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .dockerfiles import IMAGES, ServiceImage
from .layout import build_layout, run_in_layout


@pytest.mark.parametrize(
    "image", [i for i in IMAGES if i.name in {"ingest", "api", "worker"}], ids=lambda image: image.name
)
def test_the_buzzwatch_command_in_the_image_lists_its_own_subcommands(image: ServiceImage, tmp_path: Path):
    app = build_layout(image, tmp_path)
    result = run_in_layout(
        app,
        "import runpy; sys.argv = ['buzzwatch', '--help']; "
        "runpy.run_path('image_cli.py', run_name='__main__')",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "COMMAND" in result.stdout
    expected = {"ingest": "ingest", "api": "api", "worker": "worker"}[image.name]
    assert expected in result.stdout
    if image.name == "ingest":
        assert " train " not in result.stdout and " api " not in result.stdout


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
