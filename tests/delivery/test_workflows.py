"""The GitHub workflows pass actionlint, keep permissions minimal, use no keys, and deploy safely."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import REPO_ROOT, tool

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    """A workflow as data (YAML 1.1 reads the `on` key as True)."""
    data = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job."""
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_the_three_workflows_exist():
    assert {path.name for path in WORKFLOWS} == {"ci.yml", "deploy.yml", "retrain.yml"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_clean_with_shellcheck(path: Path):
    result = subprocess.run(
        [tool("actionlint"), "-no-color", f"-shellcheck={tool('shellcheck')}", str(path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ foo }}\n"
    )
    result = subprocess.run([tool("actionlint"), "-no-color", str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_default_permissions_are_read_only(path: Path):
    workflow = load(path.name)
    assert workflow["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_keys_and_no_literal_secrets(path: Path):
    text = path.read_text()
    assert "credentials_json" not in text, "use Workload Identity Federation, not a JSON key"
    assert not re.search(r"-----BEGIN|AKIA[0-9A-Z]{16}|InstrumentationKey=[0-9a-f]{8}-", text)
    pattern = r"(?i)(password|token|api_key|secret)\s*[:=]\s*['\"]?([A-Za-z0-9+/_-]{12,})(:latest)?"
    for match in re.finditer(pattern, text):
        reference = match.group(3) or "${{" in text[match.start() : match.end() + 40]
        assert reference, f"literal credential? {match.group(0)} (use a GitHub or Secret Manager secret)"


def test_ci_runs_lint_and_make_test_on_push_and_pull_request_with_pip_cache():
    workflow = load("ci.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    all_steps = steps(workflow)
    assert any("make test" in step.get("run", "") for step in all_steps)
    assert any("ruff check" in step.get("run", "") for step in all_steps)
    setups = [step for step in all_steps if step.get("uses", "").startswith("actions/setup-python")]
    assert setups and all(step["with"]["cache"] == "pip" for step in setups)
    for job in workflow["jobs"].values():
        assert "permissions" not in job or job["permissions"] == {"contents": "read"}


def test_deploy_authenticates_through_workload_identity_federation_only():
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    auth_steps = [s for s in steps(workflow) if s.get("uses", "").startswith("google-github-actions/auth@")]
    assert auth_steps
    for step in auth_steps:
        assert {"workload_identity_provider", "service_account"} <= set(step["with"])
    for name, job in workflow["jobs"].items():
        if any(s.get("uses", "").startswith("google-github-actions/auth@") for s in job.get("steps", [])):
            assert job["permissions"].get("id-token") == "write", name


def test_deploy_builds_every_image_and_deploys_through_the_rollback_script():
    workflow = load("deploy.yml")
    matrix = workflow["jobs"]["build"]["strategy"]["matrix"]["include"]
    for entry in matrix:
        assert (REPO_ROOT / entry["dockerfile"]).is_file()
    assert {entry["image"] for entry in matrix} == {"api", "worker", "ingest", "streamlit"}
    runs = "\n".join(step.get("run", "") for step in steps(workflow))
    # detection: "$service", each instance of infra/gcp/detection_instances.py's plan
    for service in ("buzzwatch-api", "buzzwatch-worker", "buzzwatch-streamlit", '"$service"'):
        assert re.search(rf"infra/gcp/deploy_service\.sh {re.escape(service)} ", runs), service
    assert "gcloud run deploy" not in runs, "every service goes through deploy_service.sh (smoke + rollback)"
    assert "infra/gcp/pubsub.sh" in runs and "PUSH_SERVICE_ACCOUNT" in runs
    assert re.search(r"--set-secrets", runs), "runtime secrets come from Secret Manager"
    assert workflow["jobs"]["deploy"]["needs"] == "build" and workflow["jobs"]["build"]["needs"] == "test"
    assert workflow["jobs"]["test"]["uses"] == "./.github/workflows/ci.yml"


def test_pubsub_script_makes_an_oidc_push_subscription_with_a_dead_letter_topic():
    script = (REPO_ROOT / "infra/gcp/pubsub.sh").read_text()
    for flag in (
        "--push-endpoint",
        "--push-auth-service-account",
        "--dead-letter-topic",
        "--max-delivery-attempts",
    ):
        assert flag in script, flag
    assert "subscriptions update" in script and "subscriptions create" in script, "create or update"


def test_retrain_is_manual_and_promotes_only_on_a_better_candidate():
    workflow = load("retrain.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    promote = workflow["jobs"]["promote"]
    assert promote["needs"] == "retrain"
    assert promote["if"] == "needs.retrain.outputs.promote == 'true'"
    assert workflow["jobs"]["retrain"]["outputs"]["promote"] == "${{ steps.decide.outputs.promote }}"
    runs = "\n".join(step.get("run", "") for step in steps(workflow))
    assert "infra/ci/promote.py" in runs
    assert '"evaluate", "--data"' in runs and '"--model-uri", str(root / "candidate")' in runs


def gcloud_env_vars(argument: str) -> dict[str, str]:
    """Split a --set-env-vars value as gcloud does: by commas, or by D after a leading ^D^."""
    separator = ","
    if match := re.match(r"\^(.)\^", argument):
        separator, argument = match.group(1), argument[match.end() :]
    return dict(item.split("=", 1) for item in argument.split(separator))


def test_deploy_passes_several_alert_recipients_and_display_names_whole():
    workflow = load("deploy.yml")
    deploy = workflow["jobs"]["deploy"]
    repository_vars = {
        "GCP_PROJECT_ID": "air-paradis",
        "SMTP_HOST": "smtp.example.com",
        "SMTP_PORT": "587",
        "SMTP_USERNAME": "buzzwatch",
        "ALERT_EMAIL_FROM": "BuzzWatch <buzzwatch@example.com>",
        "ALERT_EMAIL_TO": "Social Team <social@example.com>,oncall@example.com",
    }
    rendered = re.sub(
        r"\$\{\{ vars\.(\w+) \}\}", lambda m: repository_vars[m.group(1)], deploy["env"]["RUNTIME_ENV"]
    )
    export_line = next(
        line.strip()
        for step in deploy["steps"]
        for line in step.get("run", "").splitlines()
        if line.strip().startswith('echo "RUNTIME_ENV=')
    )
    script = export_line.removeprefix("echo ").split("  #")[0]
    echoed = subprocess.run(
        ["bash", "-c", f"printf '%s' {script}"],
        env={"RUNTIME_ENV": rendered, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    runtime_env = echoed.removeprefix("RUNTIME_ENV=")
    runs = "\n".join(step.get("run", "") for step in deploy["steps"])
    uses = re.findall(r'--set-env-vars "([^"]*\$\{RUNTIME_ENV\}[^"]*)"', runs)
    assert len(uses) == 3, uses  # worker, detection, API
    for use in uses:
        assert use.startswith("^;^"), use
        extra = re.sub(r"\$\{\w+\}", "", use.removeprefix("^;^").replace("${RUNTIME_ENV}", ""))
        variables = gcloud_env_vars("^;^" + runtime_env + extra)
        assert variables["ALERT_EMAIL_TO"] == repository_vars["ALERT_EMAIL_TO"]
        assert variables["ALERT_EMAIL_FROM"] == repository_vars["ALERT_EMAIL_FROM"]
        assert variables["SMTP_STARTTLS"] == "true"
    fragments = re.findall(r'(?:push_auth|partitions_env|feed_auth)="([^"]+)"', runs)
    assert len(fragments) == 4 and all(f.startswith(";") and "," not in f for f in fragments), fragments
