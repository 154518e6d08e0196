"""N detection instances as code: the plan, the Pub/Sub subscriptions made from it, the deploy that uses it.

`gcloud` cannot reach Google Cloud here, so a fake on PATH records every call (no subscription exists yet);
infra/gcp/pubsub.sh itself runs for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from buzzwatch.partitions import FILTER_LIMIT_BYTES, owned_filter, parse_owned, split_partitions
from buzzwatch.pubsub import StreamTopology
from buzzwatch.settings import CommonSettings
from worker.detection_service.groups import group_subscription
from worker.detection_service.settings import DetectionSettings

from .helpers import REPO_ROOT
from .test_workflows import load, steps

PLAN = REPO_ROOT / "infra/gcp/detection_instances.py"

RECORDING_GCLOUD = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    import json, os, sys
    args = [a for a in sys.argv[1:] if a != "--quiet"]
    if args[:1] == ["--project"]:
        args = args[2:]
    with open(os.environ["FAKE_LOG"]) as log:
        made = {json.loads(line)[3] for line in log if json.loads(line)[1:3] == ["subscriptions", "create"]}
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    if args[:2] == ["projects", "describe"]:
        print("123456")
    elif args[1:3] == ["topics", "describe"]:
        sys.exit(1)  # no topic exists yet
    elif args[1:3] == ["subscriptions", "describe"]:
        sys.exit(0 if args[3] in made else 1)
    """
)


def plan(*args: str) -> list[list[str]]:
    """The plan script's lines, split on tabs (as the shell scripts read them)."""
    result = subprocess.run(
        [sys.executable, str(PLAN), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    return [line.split("\t") for line in result.stdout.splitlines()]


def test_one_instance_is_the_single_service_of_every_earlier_deployment() -> None:
    assert plan() == [["buzzwatch-detection", "all", "tweets-scored-detector", "database-url", ""]]


@pytest.mark.parametrize("instances", [2, 4, 5, 8])
def test_n_instances_own_disjoint_partitions_each_through_its_subscription_and_database(
    instances: int,
) -> None:
    lines = plan("--instances", str(instances))
    assert [line[0] for line in lines] == [f"buzzwatch-detection-{i}" for i in range(instances)]
    owned = [parse_owned(line[1]) for line in lines]
    assert sorted(p for part in owned for p in part) == list(range(64))
    assert [line[2] for line in lines] == [f"tweets-scored-detector-{i}" for i in range(instances)]
    assert [line[3] for line in lines] == [f"database-url-detection-{i}" for i in range(instances)]
    for line, part in zip(lines, owned, strict=True):
        expected = " OR ".join(f"attributes:p{p}" for p in sorted(part))
        assert line[4] == (expected if len(expected) <= FILTER_LIMIT_BYTES else "")
    assert all(line[4] for line in lines) == (instances >= 5)  # 13 a slice at 5 instances, 16 at 4


def test_an_impossible_instance_count_is_refused_with_a_message() -> None:
    result = subprocess.run(
        [sys.executable, str(PLAN), "--instances", "65"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert result.returncode == 2 and "between 1 and 64" in result.stderr


@pytest.mark.parametrize("instances", [1, 2, 3, 16])
def test_group_mode_instances_share_the_database_and_claim_every_group_once(instances: int) -> None:
    lines = plan("--mode", "groups", "--instances", str(instances))
    assert [line[2:] for line in lines] == [["tweets-scored-detector", "database-url", ""]] * instances
    claimed = [
        DetectionSettings.from_env({"DETECTION_GROUPS": line[1], "BUZZWATCH_PARTITION_GROUPS": "16"})
        for line in lines
    ]  # read as the service reads its DETECTION_GROUPS
    assert sorted(g for one in claimed for g in (one.wanted_groups or ())) == list(range(16))
    assert [one.claims_groups for one in claimed] == [instances > 1] * instances  # one instance: `all`
    assert [line[0] for line in lines] == (
        ["buzzwatch-detection"] if instances == 1 else [f"buzzwatch-detection-{i}" for i in range(instances)]
    )


def test_group_mode_refuses_more_instances_than_groups() -> None:
    result = subprocess.run(
        [sys.executable, str(PLAN), "--mode", "groups", "--groups", "4", "--instances", "5"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert result.returncode == 2 and "between 1 and 4 (the groups)" in result.stderr


def run_pubsub_script(
    tmp_path: Path, instances: int, script: str = "pubsub.sh", **extra: str
) -> list[list[str]]:
    """infra/gcp/pubsub.sh (or another script of infra/gcp) against the recording gcloud; its calls."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gcloud").write_text(RECORDING_GCLOUD)
    (fake / "gcloud").chmod(0o755)
    os.symlink(sys.executable, fake / "python3")  # the plan runs with the project's Python
    log = tmp_path / "gcloud.log"
    log.touch()
    env = {
        "PATH": f"{fake}:/usr/bin:/bin",
        "FAKE_LOG": str(log),
        "PROJECT_ID": "p",
        "DETECTION_INSTANCES": str(instances),
        **extra,
    }
    subprocess.run(
        [str(REPO_ROOT / "infra/gcp" / script)], check=True, capture_output=True, env=env, timeout=60
    )
    return [json.loads(line) for line in log.read_text().splitlines()]


def created_subscriptions(calls: list[list[str]]) -> dict[str, list[str]]:
    return {call[3]: call[4:] for call in calls if call[:3] == ["pubsub", "subscriptions", "create"]}


def test_the_pubsub_script_makes_one_filtered_subscription_per_instance(tmp_path: Path) -> None:
    calls = run_pubsub_script(tmp_path, 5)
    created = created_subscriptions(calls)
    lines = plan("--instances", "5")
    for _, _, subscription, _, partition_filter in lines:
        flags = created[subscription]
        assert flags[:2] == ["--topic", "tweets-scored"]
        assert flags[flags.index("--message-filter") + 1] == partition_filter
        assert "--dead-letter-topic" in flags
    bound = {call[3] for call in calls if call[:3] == ["pubsub", "subscriptions", "add-iam-policy-binding"]}
    assert {line[2] for line in lines} <= bound  # Pub/Sub's agent may dead-letter from each


def test_the_pubsub_script_with_one_instance_makes_the_one_unfiltered_subscription(tmp_path: Path) -> None:
    created = created_subscriptions(run_pubsub_script(tmp_path, 1))
    scored = {name: flags for name, flags in created.items() if flags[1] == "tweets-scored"}
    assert list(scored) == ["tweets-scored-detector"]
    assert "--message-filter" not in scored["tweets-scored-detector"]


def test_the_pubsub_script_in_group_mode_makes_the_subscription_each_group_pulls(tmp_path: Path) -> None:
    calls = run_pubsub_script(tmp_path, 3, DETECTION_MODE="groups", BUZZWATCH_PARTITION_GROUPS="8")
    created = created_subscriptions(calls)
    scored = {name: flags for name, flags in created.items() if flags[1] == "tweets-scored"}
    topology = StreamTopology.from_settings(CommonSettings.from_env({}))
    members = split_partitions(8, 64)
    assert list(scored) == [group_subscription(topology, group) for group in range(8)]  # the service's names
    for group, flags in enumerate(scored.values()):
        assert flags[flags.index("--message-filter") + 1] == owned_filter(members[group], 64)
        assert "--dead-letter-topic" in flags
    bound = {call[3] for call in calls if call[:3] == ["pubsub", "subscriptions", "add-iam-policy-binding"]}
    assert set(scored) <= bound


def test_the_setup_script_in_group_mode_lets_detection_pull_each_group_with_the_shared_database(
    tmp_path: Path,
) -> None:
    calls = run_pubsub_script(
        tmp_path,
        2,
        "setup.sh",
        GITHUB_REPOSITORY="o/b",
        DETECTION_MODE="groups",
        BUZZWATCH_PARTITION_GROUPS="4",
    )
    detection = "serviceAccount:bw-detection@p.iam.gserviceaccount.com"
    pulled = {
        call[3]
        for call in calls
        if call[:3] == ["pubsub", "subscriptions", "add-iam-policy-binding"] and detection in call
    }
    assert pulled == {f"tweets-scored-detector-g{group}" for group in range(4)}
    secrets = {call[2] for call in calls if call[:2] == ["secrets", "describe"]}
    assert "database-url" in secrets and not any(name.startswith("database-url-") for name in secrets)


def test_the_deploy_workflow_deploys_every_planned_instance_and_the_app_reads_them_all() -> None:
    workflow = load("deploy.yml")
    assert workflow["env"]["DETECTION_INSTANCES"] == "${{ vars.DETECTION_INSTANCES || '1' }}"
    runs = {step.get("name", ""): step.get("run", "") for step in steps(workflow)}
    detection = next(run for name, run in runs.items() if name.startswith("Deploy the detection"))
    assert (
        "infra/gcp/detection_instances.py" in detection and '--instances "$DETECTION_INSTANCES"' in detection
    )
    assert 'infra/gcp/deploy_service.sh "$service"' in detection
    for setting in ("DETECTION_PARTITIONS=${owned}", "PUBSUB_SCORED_SUBSCRIPTION=${subscription}"):
        assert setting in detection
    assert "DATABASE_URL=${secret}:latest" in detection
    # vars.DETECTION_MODE=groups: each service claims its planned groups under its own name
    assert workflow["env"]["DETECTION_MODE"] == "${{ vars.DETECTION_MODE || 'static' }}"
    assert '--mode "$DETECTION_MODE" --groups "$BUZZWATCH_PARTITION_GROUPS"' in detection
    for setting in ("DETECTION_GROUPS=${owned}", "DETECTION_INSTANCE_ID=${service}"):
        assert setting in detection
    streamlit = next(run for name, run in runs.items() if name.startswith("Deploy Streamlit"))
    assert "infra/gcp/detection_instances.py" in streamlit
    assert 'detection_url="${detection_urls[*]}"' in streamlit  # space-separated: load_records merges
