"""Builds infra/azure/main.json (an ARM template) from the alert queries in infra/azure/alerts/*.kql.

The KQL lives in its own files so it can be read, reviewed and tested against the metric names the code
emits (tests/delivery/test_azure.py); this script embeds it into the template that `deploy.sh` deploys.
There is no Bicep compiler on this machine, so the template is plain ARM JSON, generated and committed:

    .venv/bin/python infra/azure/build_template.py          # rewrite main.json
    .venv/bin/python infra/azure/build_template.py --check  # exit 1 if main.json is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AZURE_DIR = Path(__file__).resolve().parent
ALERTS_DIR = AZURE_DIR / "alerts"
TEMPLATE_PATH = AZURE_DIR / "main.json"
REPO_ROOT = AZURE_DIR.parents[1]

sys.path.insert(0, str(REPO_ROOT))
from buzzwatch.files import check_or_write  # noqa: E402 - the repository root is on the path first

WORKSPACE_API = "2023-09-01"
COMPONENT_API = "2020-02-02"
ACTION_GROUP_API = "2023-01-01"
SCHEDULED_QUERY_API = "2023-03-15-preview"


@dataclass(frozen=True)
class AlertRule:
    """One scheduled log-query alert: the query file, how often it runs and over which window."""

    slug: str
    display_name: str
    description: str
    severity: int  # 0 critical .. 4 verbose
    frequency: str  # ISO 8601 duration
    window: str
    split_by: str | None = None  # a column of the query's output: one alert per value
    auto_mitigate: bool = True

    @property
    def query_path(self) -> Path:
        """The .kql file of this rule."""
        return ALERTS_DIR / f"{self.slug}.kql"


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "bad-buzz-per-brand",
        "BuzzWatch: bad buzz (negative-share spike) per brand",
        "Negative share of a brand's tweets over 15 minutes far above its previous 24 hours (counters "
        "deduplicated by the detection service). Second opinion next to the detector's own alert email.",
        severity=1,
        frequency="PT5M",
        window="P1D",
        split_by="brand",
    ),
    AlertRule(
        "misprediction-rate",
        "BuzzWatch: misprediction rate from feedback",
        "Too many feedback corrections in the last hour: the model may be drifting.",
        severity=2,
        frequency="PT15M",
        window="PT1H",
    ),
    AlertRule(
        "api-5xx",
        "BuzzWatch: API server errors (5xx)",
        "The scoring API answered with server errors in the last 15 minutes.",
        severity=1,
        frequency="PT5M",
        window="PT15M",
    ),
    AlertRule(
        "api-latency",
        "BuzzWatch: API latency per route",
        "Mean request latency of an API route over 10 minutes above 100 ms.",
        severity=2,
        frequency="PT5M",
        window="PT10M",
        split_by="route",
    ),
    AlertRule(
        "stream-stalled",
        "BuzzWatch: stream stalled",
        "No tweet scored for 30 minutes although the stream was flowing before.",
        severity=2,
        frequency="PT15M",
        window="P1D",
    ),
    AlertRule(
        "dead-letters",
        "BuzzWatch: dead-lettered messages",
        "Many stream messages dead-lettered in 15 minutes, by reason.",
        severity=3,
        frequency="PT5M",
        window="PT15M",
        split_by="reason",
    ),
)


def read_query(rule: AlertRule) -> str:
    """The query text without its leading comment lines (they document the file, not the rule)."""
    lines = rule.query_path.read_text(encoding="utf-8").splitlines()
    body = [line for line in lines if not line.lstrip().startswith("//")]
    return "\n".join(body).strip() + "\n"


def alert_resource(rule: AlertRule) -> dict[str, Any]:
    """The scheduledQueryRules resource of one rule, scoped to the Application Insights component."""
    condition: dict[str, Any] = {
        "query": read_query(rule),
        "timeAggregation": "Count",
        "operator": "GreaterThan",
        "threshold": 0,
        "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
    }
    if rule.split_by:
        condition["dimensions"] = [{"name": rule.split_by, "operator": "Include", "values": ["*"]}]
    return {
        "type": "Microsoft.Insights/scheduledQueryRules",
        "apiVersion": SCHEDULED_QUERY_API,
        "name": f"[format('{{0}}-{rule.slug}', parameters('namePrefix'))]",
        "location": "[parameters('location')]",
        "kind": "LogAlert",
        "tags": "[variables('tags')]",
        "dependsOn": [
            "[resourceId('Microsoft.Insights/components', variables('appInsightsName'))]",
            "[resourceId('Microsoft.Insights/actionGroups', variables('actionGroupName'))]",
        ],
        "properties": {
            "displayName": rule.display_name,
            "description": rule.description,
            "severity": rule.severity,
            "enabled": True,
            "evaluationFrequency": rule.frequency,
            "windowSize": rule.window,
            "scopes": ["[resourceId('Microsoft.Insights/components', variables('appInsightsName'))]"],
            "criteria": {"allOf": [condition]},
            "autoMitigate": rule.auto_mitigate,
            "actions": {
                "actionGroups": [
                    "[resourceId('Microsoft.Insights/actionGroups', variables('actionGroupName'))]"
                ],
                "customProperties": {"runbook": f"docs/runbook.md#{rule.slug}"},
            },
        },
    }


def build_template() -> dict[str, Any]:
    """The whole ARM template: workspace, Application Insights, action group, alert rules."""
    app_insights_id = "[resourceId('Microsoft.Insights/components', variables('appInsightsName'))]"
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "metadata": {
            "description": "BuzzWatch monitoring: Application Insights (workspace-based), the alert email "
            "action group and the log alert rules. Generated by infra/azure/build_template.py; do not edit."
        },
        "parameters": {
            "namePrefix": {
                "type": "string",
                "defaultValue": "buzzwatch",
                "minLength": 3,
                "maxLength": 40,
                "metadata": {"description": "Prefix of every resource name."},
            },
            "location": {
                "type": "string",
                "defaultValue": "[resourceGroup().location]",
                "metadata": {"description": "Azure region of the workspace, component and rules."},
            },
            "alertEmail": {
                "type": "string",
                "metadata": {"description": "Where alert emails go (the social-media team's address)."},
            },
            "retentionInDays": {
                "type": "int",
                "defaultValue": 30,
                "minValue": 30,
                "maxValue": 730,
                "metadata": {"description": "Log Analytics retention (30 days are included in the price)."},
            },
            "dailyQuotaGb": {
                "type": "int",
                "defaultValue": 1,
                "minValue": 1,
                "metadata": {"description": "Daily ingestion cap of the workspace, a cost guard."},
            },
        },
        "variables": {
            "workspaceName": "[format('{0}-logs', parameters('namePrefix'))]",
            "appInsightsName": "[format('{0}-appi', parameters('namePrefix'))]",
            "actionGroupName": "[format('{0}-alerts', parameters('namePrefix'))]",
            "tags": {"application": "buzzwatch"},
        },
        "resources": [
            {
                "type": "Microsoft.OperationalInsights/workspaces",
                "apiVersion": WORKSPACE_API,
                "name": "[variables('workspaceName')]",
                "location": "[parameters('location')]",
                "tags": "[variables('tags')]",
                "properties": {
                    "sku": {"name": "PerGB2018"},
                    "retentionInDays": "[parameters('retentionInDays')]",
                    "workspaceCapping": {"dailyQuotaGb": "[parameters('dailyQuotaGb')]"},
                },
            },
            {
                "type": "Microsoft.Insights/components",
                "apiVersion": COMPONENT_API,
                "name": "[variables('appInsightsName')]",
                "location": "[parameters('location')]",
                "kind": "web",
                "tags": "[variables('tags')]",
                "dependsOn": [
                    "[resourceId('Microsoft.OperationalInsights/workspaces', variables('workspaceName'))]"
                ],
                "properties": {
                    "Application_Type": "web",
                    "WorkspaceResourceId": (
                        "[resourceId('Microsoft.OperationalInsights/workspaces', variables('workspaceName'))]"
                    ),
                    "IngestionMode": "LogAnalytics",
                    "publicNetworkAccessForIngestion": "Enabled",
                    "publicNetworkAccessForQuery": "Enabled",
                },
            },
            {
                "type": "Microsoft.Insights/actionGroups",
                "apiVersion": ACTION_GROUP_API,
                "name": "[variables('actionGroupName')]",
                "location": "Global",
                "tags": "[variables('tags')]",
                "properties": {
                    "groupShortName": "buzzwatch",
                    "enabled": True,
                    "emailReceivers": [
                        {
                            "name": "social-media-team",
                            "emailAddress": "[parameters('alertEmail')]",
                            "useCommonAlertSchema": True,
                        }
                    ],
                },
            },
            *[alert_resource(rule) for rule in RULES],
        ],
        "outputs": {
            "appInsightsConnectionString": {
                "type": "string",
                "value": f"[reference({app_insights_id[1:-1]}, '{COMPONENT_API}').ConnectionString]",
            },
            "appInsightsName": {"type": "string", "value": "[variables('appInsightsName')]"},
            "actionGroupId": {
                "type": "string",
                "value": "[resourceId('Microsoft.Insights/actionGroups', variables('actionGroupName'))]",
            },
        },
    }


def render() -> str:
    """main.json's text."""
    return json.dumps(build_template(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write main.json, or with --check tell whether it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if main.json is stale")
    args = parser.parse_args(argv)
    return check_or_write(
        {TEMPLATE_PATH: render()}, check=args.check, command="python infra/azure/build_template.py"
    )


if __name__ == "__main__":
    sys.exit(main())
