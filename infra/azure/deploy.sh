#!/usr/bin/env bash
# Deploys BuzzWatch monitoring to Azure with the az CLI: a resource group, a Log Analytics workspace,
# workspace-based Application Insights, the alert email action group and the log alert rules
# (infra/azure/main.json, built from infra/azure/alerts/*.kql by build_template.py).
# Then, when GCP_PROJECT_ID is set, stores the connection string as a new version of the Secret Manager
# secret the Cloud Run services read (APPLICATIONINSIGHTS_CONNECTION_STRING), so it never sits in a file.
#
# Usage: ALERT_EMAIL=team@example.com [RESOURCE_GROUP=buzzwatch-monitoring] [LOCATION=westeurope] \
#        [NAME_PREFIX=buzzwatch] [GCP_PROJECT_ID=my-project] infra/azure/deploy.sh
# Needs: az (logged in: `az login`, subscription chosen: `az account set --subscription ...`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
alert_email="${ALERT_EMAIL:?set ALERT_EMAIL (where alert emails go)}"
resource_group="${RESOURCE_GROUP:-buzzwatch-monitoring}"
location="${LOCATION:-westeurope}"
name_prefix="${NAME_PREFIX:-buzzwatch}"
deployment="buzzwatch-monitoring-$(date -u +%Y%m%d%H%M%S)"

command -v az >/dev/null || { echo "az CLI not found: install it first" >&2; exit 1; }

echo "resource group $resource_group in $location" >&2
az group create --name "$resource_group" --location "$location" --output none

echo "validating the template" >&2
az deployment group validate --resource-group "$resource_group" \
  --template-file "$here/main.json" \
  --parameters namePrefix="$name_prefix" alertEmail="$alert_email" --output none

echo "deploying $deployment" >&2
az deployment group create --resource-group "$resource_group" --name "$deployment" \
  --template-file "$here/main.json" \
  --parameters namePrefix="$name_prefix" alertEmail="$alert_email" --output none

connection_string="$(az deployment group show --resource-group "$resource_group" --name "$deployment" \
  --query properties.outputs.appInsightsConnectionString.value --output tsv)"

if [[ -n "${GCP_PROJECT_ID:-}" ]]; then
  secret="appinsights-connection-string"
  if ! gcloud secrets describe "$secret" --project "$GCP_PROJECT_ID" >/dev/null 2>&1; then
    gcloud secrets create "$secret" --project "$GCP_PROJECT_ID" --replication-policy automatic
  fi
  printf '%s' "$connection_string" |
    gcloud secrets versions add "$secret" --project "$GCP_PROJECT_ID" --data-file=-
  echo "stored the connection string in Secret Manager: $secret (project $GCP_PROJECT_ID)" >&2
else
  echo "set GCP_PROJECT_ID to store the connection string in Secret Manager; it is not printed here." >&2
fi
echo "done: Application Insights ${name_prefix}-appi, alert rules and action group in $resource_group" >&2
