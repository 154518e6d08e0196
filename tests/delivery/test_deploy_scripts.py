"""The deploy scripts: shellcheck clean, and the Cloud Run roll-out with smoke test and rollback.

Cloud Run cannot be reached here, so `gcloud` and `curl` are replaced by small fakes on PATH that keep a
service's revisions and traffic split in a JSON file and fail the URLs a scenario says are broken. The
scripts themselves (deploy_service.sh, smoke.sh) run for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from .helpers import REPO_ROOT, tool

SCRIPTS = sorted((REPO_ROOT / "infra").rglob("*.sh"))

FAKE_GCLOUD = textwrap.dedent(
    '''\
    #!/usr/bin/env python3
    """A tiny Cloud Run stand-in: one service's revisions and traffic in $FAKE_STATE."""
    import json, os, sys
    args = sys.argv[1:]
    state_path = os.environ["FAKE_STATE"]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    state = json.load(open(state_path)) if os.path.exists(state_path) else None

    def flag(name):
        for index, arg in enumerate(args):
            if arg == name:
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None

    def save():
        json.dump(state, open(state_path, "w"))

    def tag_url(service, tag):
        return f"https://{tag}---{service}.run.app"

    if args[:2] == ["auth", "print-identity-token"]:
        print("fake-id-token")
    elif args[:3] == ["run", "services", "describe"]:
        if state is None:
            print("ERROR: service not found", file=sys.stderr)
            sys.exit(1)
        print(json.dumps({"status": {"url": state["url"], "traffic": state["traffic"]}}))
    elif args[:2] == ["run", "deploy"]:
        service, tag = args[2], flag("--tag")
        if state is None:
            if "--no-traffic" in args:
                print("ERROR: --no-traffic not supported when creating a new service", file=sys.stderr)
                sys.exit(1)
            revision = f"{service}-00001"
            state = {"url": f"https://{service}.run.app", "next": 2, "traffic": [
                {"revisionName": revision, "percent": 100, "tag": tag, "url": tag_url(service, tag)}]}
        else:
            revision = f"{service}-{state['next']:05d}"
            state["next"] += 1
            entry = {"revisionName": revision, "percent": 0 if "--no-traffic" in args else 100,
                     "tag": tag, "url": tag_url(service, tag)}
            if "--no-traffic" not in args:
                for old in state["traffic"]:
                    old["percent"] = 0
            state["traffic"].append(entry)
        save()
    elif args[:3] == ["run", "services", "update-traffic"]:
        if flag("--to-tags"):
            tag, percent = flag("--to-tags").split("=")
            for entry in state["traffic"]:
                entry["percent"] = int(percent) if entry.get("tag") == tag else 0
        if flag("--to-revisions"):
            split = dict(item.split("=") for item in flag("--to-revisions").split(","))
            for entry in state["traffic"]:
                entry["percent"] = int(split.get(entry["revisionName"], 0))
        if flag("--remove-tags"):
            gone = set(flag("--remove-tags").split(","))
            for entry in state["traffic"]:
                if entry.get("tag") in gone:
                    entry.pop("tag")
            state["traffic"] = [e for e in state["traffic"] if e.get("tag") or e["percent"]]
        save()
    else:
        print(f"fake gcloud: unexpected {args}", file=sys.stderr)
        sys.exit(2)
    '''
)

FAKE_CURL = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    import os, sys
    url = sys.argv[-1]
    broken = [part for part in os.environ.get("BROKEN_URLS", "").split(",") if part]
    if any(url.startswith(prefix) for prefix in broken):
        print(f"curl: (22) The requested URL returned error: 503 for {url}", file=sys.stderr)
        sys.exit(22)
    if "--output" not in sys.argv:
        print('{"label": "negative", "probabilities": {"negative": 0.9}, "prediction_id": "x"}')
    """
)


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_shellcheck_clean(path: Path):
    result = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(path, os.X_OK), f"{path} is not executable"


class FakeCloudRun:
    """A temporary PATH with fake gcloud/curl and the state they share."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        for name, body in (("gcloud", FAKE_GCLOUD), ("curl", FAKE_CURL)):
            path = self.bin / name
            path.write_text(body)
            path.chmod(0o755)
        self.state_path = root / "state.json"
        self.log_path = root / "calls.jsonl"

    def seed(self, service: str, revision: str) -> None:
        """An existing service whose one revision serves all traffic."""
        self.state_path.write_text(
            json.dumps(
                {
                    "url": f"https://{service}.run.app",
                    "next": 2,
                    "traffic": [{"revisionName": revision, "percent": 100}],
                }
            )
        )

    def deploy(
        self, service: str, kind: str, broken_urls: tuple[str, ...] = (), tag: str = "c-1a2b3c4"
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "FAKE_STATE": str(self.state_path),
            "FAKE_LOG": str(self.log_path),
            "BROKEN_URLS": ",".join(broken_urls),
            "REGION": "europe-west1",
            "TAG": tag,
            "DEPLOY_SERVICE_ACCOUNT": "bw-deployer@p.iam.gserviceaccount.com",
        }
        return subprocess.run(
            [str(REPO_ROOT / "infra/gcp/deploy_service.sh"), service, "img:new", kind, "--cpu", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    def tags(self) -> set[str]:
        state = json.loads(self.state_path.read_text())
        return {entry["tag"] for entry in state["traffic"] if entry.get("tag")}

    def serving(self) -> dict[str, int]:
        state = json.loads(self.state_path.read_text())
        return {entry["revisionName"]: entry["percent"] for entry in state["traffic"] if entry["percent"]}

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


@pytest.fixture
def cloud_run(tmp_path: Path) -> FakeCloudRun:
    return FakeCloudRun(tmp_path)


def test_a_healthy_revision_is_smoke_tested_with_no_traffic_then_takes_all_of_it(cloud_run: FakeCloudRun):
    cloud_run.seed("buzzwatch-api", "buzzwatch-api-00001")
    result = cloud_run.deploy("buzzwatch-api", "api")
    assert result.returncode == 0, result.stderr
    assert cloud_run.serving() == {"buzzwatch-api-00002": 100}
    deploy_call = next(call for call in cloud_run.calls() if call[:2] == ["run", "deploy"])
    assert "--no-traffic" in deploy_call and "--tag" in deploy_call and "--cpu" in deploy_call
    assert "ok POST /v1/predict -> negative" in result.stderr


def test_a_revision_failing_its_smoke_test_never_gets_traffic(cloud_run: FakeCloudRun):
    cloud_run.seed("buzzwatch-api", "buzzwatch-api-00001")
    result = cloud_run.deploy("buzzwatch-api", "api", broken_urls=("https://c-1a2b3c4---",))
    assert result.returncode != 0
    assert cloud_run.serving() == {"buzzwatch-api-00001": 100}
    assert not [call for call in cloud_run.calls() if "--to-tags" in call]
    assert any("--remove-tags" in call for call in cloud_run.calls())
    assert "traffic stays on buzzwatch-api-00001=100" in result.stderr


def test_a_failure_on_the_live_url_after_the_switch_rolls_traffic_back(cloud_run: FakeCloudRun):
    cloud_run.seed("buzzwatch-worker", "buzzwatch-worker-00007")
    result = cloud_run.deploy("buzzwatch-worker", "worker", broken_urls=("https://buzzwatch-worker.run.app",))
    assert result.returncode != 0
    assert cloud_run.serving() == {"buzzwatch-worker-00007": 100}
    assert any("--to-tags" in call for call in cloud_run.calls()), "traffic had moved before the live check"
    rollbacks = [call for call in cloud_run.calls() if "--to-revisions" in call]
    assert rollbacks and "buzzwatch-worker-00007=100" in rollbacks[-1]
    token_calls = [call for call in cloud_run.calls() if call[:2] == ["auth", "print-identity-token"]]
    assert token_calls, "private services are smoke-tested with an ID token"


def test_a_new_service_is_created_with_traffic_and_smoke_tested(cloud_run: FakeCloudRun):
    result = cloud_run.deploy("buzzwatch-streamlit", "streamlit")
    assert result.returncode == 0, result.stderr
    assert cloud_run.serving() == {"buzzwatch-streamlit-00001": 100}
    deploy_call = next(call for call in cloud_run.calls() if call[:2] == ["run", "deploy"])
    assert "--no-traffic" not in deploy_call


def test_earlier_tags_are_removed_once_a_new_revision_is_live(cloud_run: FakeCloudRun):
    cloud_run.seed("buzzwatch-api", "buzzwatch-api-00001")
    assert cloud_run.deploy("buzzwatch-api", "api", tag="c-aaaaaaa").returncode == 0
    assert cloud_run.deploy("buzzwatch-api", "api", tag="c-bbbbbbb").returncode == 0
    assert cloud_run.serving() == {"buzzwatch-api-00003": 100}
    assert cloud_run.tags() == {"c-bbbbbbb"}
