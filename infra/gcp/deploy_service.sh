#!/usr/bin/env bash
# Deploys one Cloud Run service without risking the running one:
#   1. remember the revisions that serve traffic now;
#   2. deploy the new image with --no-traffic and a tag (a brand-new service gets traffic at once: there is
#      nothing to protect, and Cloud Run refuses --no-traffic on creation);
#   3. smoke-test the tagged URL; on failure the old revisions keep 100% and the tag is removed;
#   4. move all traffic to the tag, smoke-test the main URL; on failure restore the remembered split;
#   5. once live, remove the tags of earlier deployments (their revisions stay, for manual rollback).
#
# Usage: deploy_service.sh SERVICE IMAGE SMOKE_KIND [extra `gcloud run deploy` flags...]
#   SMOKE_KIND: api | worker | detection | streamlit (see smoke.sh)
# Environment: REGION, TAG (e.g. c-1a2b3c4, lowercase), and for private services DEPLOY_SERVICE_ACCOUNT
# (smoke requests carry an ID token minted by impersonating it). PROJECT_ID if gcloud has no default.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
service="${1:?usage: deploy_service.sh SERVICE IMAGE SMOKE_KIND [gcloud run deploy flags...]}"
image="${2:?missing IMAGE}"
smoke_kind="${3:?missing SMOKE_KIND}"
shift 3
region="${REGION:?set REGION}"
tag="${TAG:?set TAG (lowercase letters, digits and hyphens, starting with a letter)}"
project_flags=()
if [[ -n "${PROJECT_ID:-}" ]]; then
  project_flags=(--project "$PROJECT_ID")
fi

log() { printf '[deploy %s] %s\n' "$service" "$*" >&2; }

describe_json() {
  gcloud run services describe "$service" --region "$region" "${project_flags[@]}" --format=json
}

# The current traffic split as REVISION=PERCENT,... (revisions that serve a non-zero share).
serving_split() {
  python3 -c '
import json, sys
status = json.load(sys.stdin).get("status", {})
parts = ["%s=%s" % (t["revisionName"], t["percent"]) for t in status.get("traffic", [])
         if t.get("percent") and t.get("revisionName")]
print(",".join(parts))'
}

# The URL Cloud Run gave to a tag.
tag_url() {
  python3 -c '
import json, sys
tag = sys.argv[1]
status = json.load(sys.stdin).get("status", {})
print(next((t["url"] for t in status.get("traffic", []) if t.get("tag") == tag and t.get("url")), ""))' "$1"
}

# Tags of earlier deployments (c-...), other than this one's: removed once this one is live.
stale_tags() {
  python3 -c '
import json, sys
keep = sys.argv[1]
status = json.load(sys.stdin).get("status", {})
tags = {t["tag"] for t in status.get("traffic", []) if t.get("tag", "").startswith("c-") and t["tag"] != keep}
print(",".join(sorted(tags)))' "$tag"
}

main_url() {
  python3 -c 'import json, sys; print(json.load(sys.stdin).get("status", {}).get("url", ""))'
}

smoke() {
  local url="$1"
  local token=""
  if [[ "$smoke_kind" == "worker" || "$smoke_kind" == "detection" ]]; then
    token="$(gcloud auth print-identity-token "${project_flags[@]}" \
      --impersonate-service-account="${DEPLOY_SERVICE_ACCOUNT:?set DEPLOY_SERVICE_ACCOUNT}" \
      --audiences="$url" --include-email)"
  fi
  SMOKE_ID_TOKEN="$token" "$here/smoke.sh" "$smoke_kind" "$url"
}

previous_split=""
if state="$(describe_json 2>/dev/null)"; then
  previous_split="$(serving_split <<<"$state")"
fi

if [[ -n "$previous_split" ]]; then
  log "serving now: $previous_split; deploying $image with no traffic, tag $tag"
  gcloud run deploy "$service" --image "$image" --region "$region" "${project_flags[@]}" \
    --no-traffic --tag "$tag" --quiet "$@"
else
  log "new service: deploying $image with tag $tag"
  gcloud run deploy "$service" --image "$image" --region "$region" "${project_flags[@]}" \
    --tag "$tag" --quiet "$@"
fi

state="$(describe_json)"
candidate_url="$(tag_url "$tag" <<<"$state")"
if [[ -z "$candidate_url" ]]; then
  log "no URL for tag $tag"
  exit 1
fi

if ! smoke "$candidate_url"; then
  if [[ -n "$previous_split" ]]; then
    log "smoke test FAILED on $candidate_url: traffic stays on $previous_split"
    gcloud run services update-traffic "$service" --region "$region" "${project_flags[@]}" \
      --remove-tags "$tag" --quiet || log "could not remove tag $tag"
  else
    log "smoke test FAILED on $candidate_url (new service, no previous revision to keep)"
  fi
  exit 1
fi

if [[ -n "$previous_split" ]]; then
  log "smoke test passed: moving 100% of traffic to $tag"
  gcloud run services update-traffic "$service" --region "$region" "${project_flags[@]}" \
    --to-tags "$tag=100" --quiet
fi

url="$(main_url <<<"$(describe_json)")"
if ! smoke "$url"; then
  if [[ -n "$previous_split" ]]; then
    log "smoke test FAILED on $url after the switch: rolling back to $previous_split"
    gcloud run services update-traffic "$service" --region "$region" "${project_flags[@]}" \
      --to-revisions "$previous_split" --quiet
  else
    log "smoke test FAILED on $url (new service, no previous revision to roll back to)"
  fi
  exit 1
fi
old_tags="$(stale_tags <<<"$(describe_json)")"
if [[ -n "$old_tags" ]]; then
  gcloud run services update-traffic "$service" --region "$region" "${project_flags[@]}" \
    --remove-tags "$old_tags" --quiet || log "could not remove old tags $old_tags"
fi
log "live at $url"
