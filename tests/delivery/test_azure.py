"""Azure monitoring as code: the ARM template's structure, and KQL that queries only what the code emits."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from buzzwatch import telemetry

from .helpers import REPO_ROOT

AZURE_DIR = REPO_ROOT / "infra" / "azure"
ALERT_FILES = sorted((AZURE_DIR / "alerts").glob("*.kql"))
EMITTING_CODE = ("api", "worker", "ingest", "buzzwatch", "streamlit_app")


def load_builder():
    """infra/azure/build_template.py as a module."""
    spec = importlib.util.spec_from_file_location("build_template", AZURE_DIR / "build_template.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return json.loads((AZURE_DIR / "main.json").read_text())


def resources_of(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [resource for resource in template["resources"] if resource["type"] == kind]


def kql_body(text: str) -> str:
    """The query without // comments."""
    return "\n".join(line.split("//")[0] if "://" not in line else line for line in text.splitlines())


def test_main_json_is_generated_from_the_kql_files():
    builder = load_builder()
    assert (AZURE_DIR / "main.json").read_text() == builder.render(), (
        "run python infra/azure/build_template.py"
    )
    assert {rule.query_path for rule in builder.RULES} == set(ALERT_FILES)


def test_template_schema_parameters_and_expressions(template):
    assert template["$schema"].endswith("deploymentTemplate.json#")
    parameters, variables = set(template["parameters"]), set(template["variables"])
    assert "alertEmail" in parameters and "defaultValue" not in template["parameters"]["alertEmail"]
    text = json.dumps(template)
    for name in re.findall(r"parameters\('([^']+)'\)", text):
        assert name in parameters, name
    for name in re.findall(r"variables\('([^']+)'\)", text):
        assert name in variables, name
    for value in re.findall(r'"(\[[^"]*\])"', text):
        assert value.count("(") == value.count(")"), value


def test_application_insights_is_workspace_based(template):
    (workspace,) = resources_of(template, "Microsoft.OperationalInsights/workspaces")
    (component,) = resources_of(template, "Microsoft.Insights/components")
    assert component["properties"]["IngestionMode"] == "LogAnalytics"
    assert "Microsoft.OperationalInsights/workspaces" in component["properties"]["WorkspaceResourceId"]
    assert workspace["name"] == "[variables('workspaceName')]"
    assert "variables('workspaceName')" in component["properties"]["WorkspaceResourceId"]
    assert workspace["properties"]["retentionInDays"] == "[parameters('retentionInDays')]"
    assert "ConnectionString" in template["outputs"]["appInsightsConnectionString"]["value"]


def test_action_group_emails_the_alert_address(template):
    (group,) = resources_of(template, "Microsoft.Insights/actionGroups")
    assert len(group["properties"]["groupShortName"]) <= 12
    (receiver,) = group["properties"]["emailReceivers"]
    assert receiver["emailAddress"] == "[parameters('alertEmail')]"


def _duration_minutes(value: str) -> int:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", value)
    assert match, value
    days, hours, minutes = (int(part or 0) for part in match.groups())
    return days * 1440 + hours * 60 + minutes


def test_every_alert_rule_is_scoped_to_app_insights_and_notifies_the_action_group(template):
    rules = resources_of(template, "Microsoft.Insights/scheduledQueryRules")
    slugs = {re.search(r"\{0\}-([a-z0-9-]+)'", rule["name"]).group(1) for rule in rules}
    assert {"bad-buzz-per-brand", "misprediction-rate", "api-5xx", "api-latency"} <= slugs
    for rule in rules:
        properties = rule["properties"]
        assert properties["scopes"] == [
            "[resourceId('Microsoft.Insights/components', variables('appInsightsName'))]"
        ]
        assert "actionGroups" in properties["actions"]["actionGroups"][0]
        assert 0 <= properties["severity"] <= 4
        frequency, window = (
            _duration_minutes(properties[key]) for key in ("evaluationFrequency", "windowSize")
        )
        assert 1 <= frequency <= window <= 2 * 1440
        (condition,) = properties["criteria"]["allOf"]
        assert condition["operator"] == "GreaterThan" and condition["threshold"] == 0
        for dimension in condition.get("dimensions", []):
            assert re.search(rf"\bproject\b[^\n]*\b{dimension['name']}\b", condition["query"]), dimension


def test_the_bad_buzz_rule_splits_per_brand(template):
    rule = next(
        r for r in resources_of(template, "Microsoft.Insights/scheduledQueryRules") if "bad-buzz" in r["name"]
    )
    (condition,) = rule["properties"]["criteria"]["allOf"]
    assert condition["dimensions"] == [{"name": "brand", "operator": "Include", "values": ["*"]}]
    assert 'name == "tweets_scored"' in condition["query"]


# ---- the KQL against the code ---------------------------------------------------------------------------


def names_in_query(query: str) -> dict[str, set[str]]:
    """Metric names, event names, trace messages and customDimensions keys a query uses, by table."""
    body = kql_body(query)
    found: dict[str, set[str]] = {
        "customMetrics": set(),
        "customEvents": set(),
        "traces": set(),
        "dims": set(),
    }
    for table in ("customMetrics", "customEvents"):
        if table in body:
            for match in re.finditer(r'\bname\s*(?:==|=~)\s*"([^"]+)"', body):
                found[table].add(match.group(1))
            for match in re.finditer(r"\bname\s+in~?\s*\(([^)]*)\)", body):
                found[table].update(re.findall(r'"([^"]+)"', match.group(1)))
    if "traces" in body:
        found["traces"].update(re.findall(r'\bmessage\s*(?:==|=~)\s*"([^"]+)"', body))
    found["dims"].update(re.findall(r"customDimensions\.(\w+)", body))
    found["dims"].update(re.findall(r"customDimensions\[\"(\w+)\"\]", body))
    return found


def _constant_values() -> dict[str, str]:
    return {
        name: value for name, value in vars(telemetry).items() if name.isupper() and isinstance(value, str)
    }


def emitted_by_code() -> dict[str, set[str]]:
    """Name -> dimension keys, from every `.metric(` / `.event(` / `.trace(` call in the code.

    Names may be written as telemetry constants or literals; dimension keys are read from dict literals
    (or from `dict(key=...)`), so a call that passes a prebuilt mapping contributes its name only.
    """
    constants = _constant_values()
    emitted: dict[str, set[str]] = {}
    for package in EMITTING_CODE:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            if path.name == "telemetry.py":
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr not in {"metric", "event", "trace"} or not node.args:
                    continue
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    name = first.value
                elif isinstance(first, ast.Name) and first.id in constants:
                    name = constants[first.id]
                elif isinstance(first, ast.Attribute) and first.attr in constants:
                    name = constants[first.attr]
                else:
                    continue
                keys = emitted.setdefault(name, set())
                candidates = node.args[2:3] if node.func.attr == "metric" else node.args[1:2]
                candidates += [kw.value for kw in node.keywords if kw.arg in {"dimensions", "properties"}]
                for value in candidates:
                    if isinstance(value, ast.Dict):
                        keys.update(k.value for k in value.keys if isinstance(k, ast.Constant))
    return emitted


@pytest.mark.parametrize("path", ALERT_FILES, ids=lambda path: path.stem)
def test_every_name_a_query_uses_is_a_telemetry_constant(path: Path):
    used = names_in_query(path.read_text())
    assert used["customMetrics"] | used["customEvents"] | used["traces"], "the query reads nothing we emit"
    assert used["customMetrics"] <= telemetry.METRIC_NAMES, used["customMetrics"] - telemetry.METRIC_NAMES
    assert used["customEvents"] <= telemetry.EVENT_NAMES, used["customEvents"] - telemetry.EVENT_NAMES
    assert used["traces"] <= telemetry.TRACE_NAMES, used["traces"] - telemetry.TRACE_NAMES


@pytest.mark.parametrize("path", ALERT_FILES, ids=lambda path: path.stem)
def test_every_metric_a_query_uses_is_emitted_by_the_code_with_those_dimensions(path: Path):
    used = names_in_query(path.read_text())
    emitted = emitted_by_code()
    names = used["customMetrics"] | used["customEvents"] | used["traces"]
    missing = names - set(emitted)
    assert not missing, f"{path.name} queries {sorted(missing)}, which no code in {EMITTING_CODE} emits"
    known_keys = set().union(*(emitted[name] for name in names))
    if known_keys:
        assert used["dims"] <= known_keys, f"{path.name} reads dimensions {used['dims'] - known_keys}"


def test_the_name_extraction_sees_what_it_should():
    query = (
        'customMetrics | where name == "tweets_scored" or name in ("negative_share", "spike_score")\n'
        '| extend brand = tostring(customDimensions.brand) // name == "not_a_name"\n'
        'union customEvents | where name =~ "BadBuzzAlert"'
    )
    used = names_in_query(query)
    assert used["customMetrics"] >= {"tweets_scored", "negative_share", "spike_score"}
    assert "not_a_name" not in used["customMetrics"] and used["dims"] == {"brand"}
