#!/usr/bin/env bash
# One-time Google Cloud set-up for BuzzWatch (idempotent: safe to run again). Creates:
#   - the APIs it uses; an Artifact Registry Docker repository;
#   - one service account per service (least privilege), one for Pub/Sub push, one for GitHub deploys;
#   - Workload Identity Federation for GitHub Actions: only this repository's main branch may act as the
#     deployer (no JSON key is ever created);
#   - Secret Manager secrets (values from the environment when given, never printed);
#   - the Pub/Sub topics and pull subscriptions (infra/gcp/pubsub.sh; the push subscription is made by the
#     deploy workflow once the worker has a URL).
#
# Usage: PROJECT_ID=my-project GITHUB_REPOSITORY=owner/buzzwatch [REGION=europe-west1] infra/gcp/setup.sh
# Optional secret values: APPLICATIONINSIGHTS_CONNECTION_STRING, SMTP_PASSWORD, DATABASE_URL,
# X_BEARER_TOKEN; BUZZWATCH_API_KEY is generated when the secret has no version yet. With
# DETECTION_INSTANCES=N > 1 (infra/gcp/detection_instances.py), each detection instance i has its own
# database secret database-url-detection-<i> (value from DETECTION_DATABASE_URL_<i>) and subscription;
# with DETECTION_MODE=groups they all share database-url and each partition group has its subscription.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="${PROJECT_ID:?set PROJECT_ID}"
github_repository="${GITHUB_REPOSITORY:?set GITHUB_REPOSITORY (owner/name)}"
region="${REGION:-europe-west1}"
repository="${ARTIFACT_REPOSITORY:-buzzwatch}"
pool="${WIF_POOL:-github}"
provider="${WIF_PROVIDER:-github-actions}"

g() { gcloud --project "$project" --quiet "$@"; }
log() { printf '[setup] %s\n' "$*" >&2; }

log "enabling APIs"
g services enable run.googleapis.com artifactregistry.googleapis.com pubsub.googleapis.com \
  secretmanager.googleapis.com iam.googleapis.com iamcredentials.googleapis.com sts.googleapis.com \
  cloudresourcemanager.googleapis.com

project_number="$(g projects describe "$project" --format='value(projectNumber)')"

if ! g artifacts repositories describe "$repository" --location "$region" >/dev/null 2>&1; then
  g artifacts repositories create "$repository" --location "$region" --repository-format docker \
    --description "BuzzWatch container images"
fi

# ---- service accounts ---------------------------------------------------------------------------------
sa_email() { printf '%s@%s.iam.gserviceaccount.com' "$1" "$project"; }
ensure_sa() {
  if ! g iam service-accounts describe "$(sa_email "$1")" >/dev/null 2>&1; then
    g iam service-accounts create "$1" --display-name "$2"
  fi
}
ensure_sa bw-deployer "BuzzWatch GitHub Actions deployer"
ensure_sa bw-api "BuzzWatch scoring API (Cloud Run)"
ensure_sa bw-worker "BuzzWatch scoring worker (Cloud Run)"
ensure_sa bw-detection "BuzzWatch detection service (Cloud Run, one instance)"
ensure_sa bw-streamlit "BuzzWatch Streamlit app (Cloud Run)"
ensure_sa bw-ingest "BuzzWatch ingester"
ensure_sa bw-pubsub-push "BuzzWatch Pub/Sub push identity (OIDC)"
deployer="$(sa_email bw-deployer)"

project_role() {
  g projects add-iam-policy-binding "$project" --member "serviceAccount:$1" --role "$2" \
    --condition=None >/dev/null
}
# The deployer deploys Cloud Run services, pushes images, manages the Pub/Sub topology.
project_role "$deployer" roles/run.admin
project_role "$deployer" roles/pubsub.editor
g artifacts repositories add-iam-policy-binding "$repository" --location "$region" \
  --member "serviceAccount:$deployer" --role roles/artifactregistry.writer >/dev/null
# ... may run services as their runtime identities ...
for runtime in bw-api bw-worker bw-detection bw-streamlit bw-ingest bw-pubsub-push; do
  g iam service-accounts add-iam-policy-binding "$(sa_email "$runtime")" \
    --member "serviceAccount:$deployer" --role roles/iam.serviceAccountUser >/dev/null
done
# ... and mints ID tokens as itself for the smoke tests of private services.
g iam service-accounts add-iam-policy-binding "$deployer" \
  --member "serviceAccount:$deployer" --role roles/iam.serviceAccountTokenCreator >/dev/null
# Pub/Sub signs push requests as bw-pubsub-push: its service agent must be able to mint those tokens.
g iam service-accounts add-iam-policy-binding "$(sa_email bw-pubsub-push)" \
  --member "serviceAccount:service-${project_number}@gcp-sa-pubsub.iam.gserviceaccount.com" \
  --role roles/iam.serviceAccountTokenCreator >/dev/null

# ---- Workload Identity Federation for GitHub Actions ------------------------------------------------------
if ! g iam workload-identity-pools describe "$pool" --location global >/dev/null 2>&1; then
  g iam workload-identity-pools create "$pool" --location global --display-name "GitHub Actions"
fi
if ! g iam workload-identity-pools providers describe "$provider" --location global \
  --workload-identity-pool "$pool" >/dev/null 2>&1; then
  g iam workload-identity-pools providers create-oidc "$provider" --location global \
    --workload-identity-pool "$pool" --display-name "GitHub Actions OIDC" \
    --issuer-uri "https://token.actions.githubusercontent.com" \
    --attribute-mapping "google.subject=assertion.sub,attribute.repository=assertion.repository,attribute.ref=assertion.ref" \
    --attribute-condition "assertion.repository == '${github_repository}' && assertion.ref == 'refs/heads/main'"
fi
g iam service-accounts add-iam-policy-binding "$deployer" --role roles/iam.workloadIdentityUser \
  --member "principalSet://iam.googleapis.com/projects/${project_number}/locations/global/workloadIdentityPools/${pool}/attribute.repository/${github_repository}" \
  >/dev/null

# ---- Secret Manager -----------------------------------------------------------------------------------
ensure_secret() {
  local name="$1" value="${2:-}"
  if ! g secrets describe "$name" >/dev/null 2>&1; then
    g secrets create "$name" --replication-policy automatic
  fi
  if [[ -n "$value" ]]; then
    printf '%s' "$value" | g secrets versions add "$name" --data-file=- >/dev/null
    log "secret $name: new version added"
  elif [[ -z "$(g secrets versions list "$name" --filter='state=ENABLED' --format='value(name)' --limit 1)" ]]; then
    log "secret $name has no value yet: gcloud secrets versions add $name --data-file=- (see docs/deployment.md)"
  fi
}
ensure_secret appinsights-connection-string "${APPLICATIONINSIGHTS_CONNECTION_STRING:-}"
ensure_secret smtp-password "${SMTP_PASSWORD:-}"
ensure_secret database-url "${DATABASE_URL:-}"
# One line per detection instance: service, partitions, subscription, database secret, filter; then one
# line per scored subscription they pull: name, filter.
detection_plan() {
  PYTHONPATH="$here/../.." python3 "$here/detection_instances.py" "$@" \
    --instances "${DETECTION_INSTANCES:-1}" --partitions "${BUZZWATCH_PARTITIONS:-64}" \
    --subscription "${PUBSUB_SCORED_SUBSCRIPTION:-tweets-scored-detector}" --mode "${DETECTION_MODE:-static}" \
    ${BUZZWATCH_PARTITION_GROUPS:+--groups "$BUZZWATCH_PARTITION_GROUPS"}
}
mapfile -t detection_instances < <(detection_plan)
mapfile -t detection_subscriptions < <(detection_plan --subscriptions)
for line in "${detection_instances[@]}"; do
  IFS=$'\t' read -r _service _owned _subscription secret _filter <<<"$line"
  if [[ "$secret" != database-url ]]; then
    value_variable="DETECTION_DATABASE_URL_${secret##*-}"
    ensure_secret "$secret" "${!value_variable:-}"
  fi
done
ensure_secret x-bearer-token "${X_BEARER_TOKEN:-}"
api_key=""
if ! g secrets versions access latest --secret buzzwatch-api-key >/dev/null 2>&1; then
  api_key="$(openssl rand -hex 32)"
fi
ensure_secret buzzwatch-api-key "$api_key"
app_token=""  # the Streamlit app's token: its feedback is trusted for training and not rate-limited
if ! g secrets versions access latest --secret buzzwatch-app-token >/dev/null 2>&1; then
  app_token="$(openssl rand -hex 32)"
fi
ensure_secret buzzwatch-app-token "$app_token"

secret_access() {
  g secrets add-iam-policy-binding "$1" --member "serviceAccount:$(sa_email "$2")" \
    --role roles/secretmanager.secretAccessor >/dev/null
}
for runtime in bw-api bw-worker bw-detection; do
  secret_access appinsights-connection-string "$runtime"
done
for runtime in bw-api bw-detection; do
  secret_access smtp-password "$runtime"
done
secret_access database-url bw-api
for line in "${detection_instances[@]}"; do
  IFS=$'\t' read -r _service _owned _subscription secret _filter <<<"$line"
  secret_access "$secret" bw-detection
done
secret_access buzzwatch-api-key bw-api
secret_access buzzwatch-app-token bw-api
secret_access buzzwatch-app-token bw-streamlit
secret_access x-bearer-token bw-ingest

# ---- Pub/Sub topology and the runtime identities' rights on it ---------------------------------------------
PROJECT_ID="$project" "$here/pubsub.sh"
g pubsub topics add-iam-policy-binding "${PUBSUB_TWEETS_TOPIC:-tweets}" \
  --member "serviceAccount:$(sa_email bw-ingest)" --role roles/pubsub.publisher >/dev/null
for topic in "${PUBSUB_SCORED_TOPIC:-tweets-scored}" "${PUBSUB_DEAD_LETTER_TOPIC:-tweets-dead-letter}"; do
  g pubsub topics add-iam-policy-binding "$topic" \
    --member "serviceAccount:$(sa_email bw-worker)" --role roles/pubsub.publisher >/dev/null
done
for line in "${detection_subscriptions[@]}"; do
  IFS=$'\t' read -r subscription _filter <<<"$line"
  g pubsub subscriptions add-iam-policy-binding "$subscription" \
    --member "serviceAccount:$(sa_email bw-detection)" --role roles/pubsub.subscriber >/dev/null
done

cat <<EOF
Done. Set these GitHub repository variables (Settings > Secrets and variables > Actions > Variables):
  GCP_PROJECT_ID=${project}
  GCP_REGION=${region}
  GCP_ARTIFACT_REPOSITORY=${repository}
  GCP_WORKLOAD_IDENTITY_PROVIDER=projects/${project_number}/locations/global/workloadIdentityPools/${pool}/providers/${provider}
  GCP_DEPLOY_SERVICE_ACCOUNT=${deployer}
EOF
