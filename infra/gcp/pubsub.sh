#!/usr/bin/env bash
# Creates or updates the BuzzWatch Pub/Sub topology on Google Cloud (idempotent; run it as often as you like):
#
#   tweets --(push, OIDC-signed, to the scoring worker on Cloud Run)--> worker --> tweets-scored
#   tweets-scored --(pull, one subscription per detection instance)--> the detection service(s)
#   failing deliveries (after MAX_DELIVERY_ATTEMPTS) --> tweets-dead-letter --(pull)--> kept for inspection
#
# The names match buzzwatch/pubsub.py's StreamTopology defaults (the same topology the local emulator gets).
# Usage: PROJECT_ID=... [WORKER_URL=https://... PUSH_SERVICE_ACCOUNT=sa@...] infra/gcp/pubsub.sh
# Without WORKER_URL only the topics and the pull subscriptions are made (the first set-up, before the
# worker exists); the deploy workflow runs it again with the worker's URL.
# DETECTION_INSTANCES=N (default 1) makes one scored subscription per detection instance, as planned by
# infra/gcp/detection_instances.py (N=1: tweets-scored-detector, as always); with DETECTION_MODE=groups,
# one per partition group instead (BUZZWATCH_PARTITION_GROUPS, 16 by default: tweets-scored-detector-g<k>).
# A partition filter is set at creation only (Pub/Sub cannot change a subscription's filter: delete the
# subscription to change it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

project="${PROJECT_ID:?set PROJECT_ID}"
tweets_topic="${PUBSUB_TWEETS_TOPIC:-tweets}"
scored_topic="${PUBSUB_SCORED_TOPIC:-tweets-scored}"
dead_letter_topic="${PUBSUB_DEAD_LETTER_TOPIC:-tweets-dead-letter}"
tweets_subscription="${PUBSUB_TWEETS_SUBSCRIPTION:-tweets-worker}"
dead_letter_subscription="${PUBSUB_DEAD_LETTER_SUBSCRIPTION:-tweets-dead-letter-keep}"
max_delivery_attempts="${PUBSUB_MAX_DELIVERY_ATTEMPTS:-5}"
push_path="${WORKER_PUSH_PATH:-/pubsub/push}"
push_audience="${PUSH_AUDIENCE:-}"

g() { gcloud --project "$project" --quiet "$@"; }
log() { printf '[pubsub] %s\n' "$*" >&2; }

ensure_topic() {
  if g pubsub topics describe "$1" >/dev/null 2>&1; then
    log "topic $1 exists"
  else
    g pubsub topics create "$1"
  fi
}

# ensure_subscription NAME TOPIC FILTER [flags shared by create and update...] (FILTER: "" for none)
ensure_subscription() {
  local name="$1" topic="$2" filter="$3"
  shift 3
  if g pubsub subscriptions describe "$name" >/dev/null 2>&1; then
    log "updating subscription $name"
    g pubsub subscriptions update "$name" "$@"
  elif [[ -n "$filter" ]]; then
    g pubsub subscriptions create "$name" --topic "$topic" --message-filter "$filter" "$@"
  else
    g pubsub subscriptions create "$name" --topic "$topic" "$@"
  fi
}

# One line per scored subscription of the detection instances: name, filter.
mapfile -t detection_subscriptions < <(PYTHONPATH="$here/../.." python3 "$here/detection_instances.py" \
  --subscriptions --instances "${DETECTION_INSTANCES:-1}" --partitions "${BUZZWATCH_PARTITIONS:-64}" \
  --subscription "${PUBSUB_SCORED_SUBSCRIPTION:-tweets-scored-detector}" --mode "${DETECTION_MODE:-static}" \
  ${BUZZWATCH_PARTITION_GROUPS:+--groups "$BUZZWATCH_PARTITION_GROUPS"})
scored_subscriptions=()

for topic in "$tweets_topic" "$scored_topic" "$dead_letter_topic"; do
  ensure_topic "$topic"
done

retry_flags=(--ack-deadline 60 --min-retry-delay 1s --max-retry-delay 60s)
dead_letter_flags=(--dead-letter-topic "$dead_letter_topic" --max-delivery-attempts "$max_delivery_attempts")

ensure_subscription "$dead_letter_subscription" "$dead_letter_topic" "" --ack-deadline 600 \
  --message-retention-duration 7d
for line in "${detection_subscriptions[@]}"; do
  IFS=$'\t' read -r subscription filter <<<"$line"
  ensure_subscription "$subscription" "$scored_topic" "$filter" "${retry_flags[@]}" "${dead_letter_flags[@]}"
  scored_subscriptions+=("$subscription")
done

if [[ -n "${WORKER_URL:-}" ]]; then
  service_account="${PUSH_SERVICE_ACCOUNT:?set PUSH_SERVICE_ACCOUNT (the identity Pub/Sub signs pushes with)}"
  endpoint="${WORKER_URL%/}${push_path}"
  push_flags=(--push-endpoint "$endpoint" --push-auth-service-account "$service_account")
  if [[ -n "$push_audience" ]]; then
    push_flags+=(--push-auth-token-audience "$push_audience")
  fi
  ensure_subscription "$tweets_subscription" "$tweets_topic" "" "${push_flags[@]}" "${retry_flags[@]}" \
    "${dead_letter_flags[@]}"
  log "push subscription $tweets_subscription -> $endpoint (OIDC as $service_account)"
else
  log "WORKER_URL not set: the push subscription $tweets_subscription is left as it is"
fi

# Dead-lettering: Pub/Sub's own service agent must publish to the dead-letter topic and acknowledge
# (subscribe to) the source subscriptions.
project_number="$(g projects describe "$project" --format='value(projectNumber)')"
agent="serviceAccount:service-${project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
g pubsub topics add-iam-policy-binding "$dead_letter_topic" --member "$agent" --role roles/pubsub.publisher \
  >/dev/null
for subscription in "${scored_subscriptions[@]}" "$tweets_subscription"; do
  if g pubsub subscriptions describe "$subscription" >/dev/null 2>&1; then
    g pubsub subscriptions add-iam-policy-binding "$subscription" --member "$agent" \
      --role roles/pubsub.subscriber >/dev/null
  fi
done
log "done"
