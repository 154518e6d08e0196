#!/usr/bin/env bash
# Smoke test of one deployed BuzzWatch service; exit 0 when it is healthy and does its job.
# Usage: smoke.sh KIND BASE_URL   (KIND: api | worker | detection | streamlit)
# SMOKE_ID_TOKEN, when set, is sent as a bearer token (private services: worker, detection).
set -euo pipefail

kind="${1:?usage: smoke.sh api|worker|detection|streamlit BASE_URL}"
base_url="${2:?missing BASE_URL}"
base_url="${base_url%/}"

curl_args=(--fail --silent --show-error --max-time 20 --retry 5 --retry-delay 3 --retry-all-errors)
if [[ -n "${SMOKE_ID_TOKEN:-}" ]]; then
  curl_args+=(--header "Authorization: Bearer ${SMOKE_ID_TOKEN}")
fi

check_get() {
  local path="$1"
  curl "${curl_args[@]}" --output /dev/null "$base_url$path"
  echo "ok GET $path" >&2
}

case "$kind" in
  api)
    check_get /healthz
    check_get /readyz
    # A real prediction: the champion must load and answer with one of the three labels.
    body="$(curl "${curl_args[@]}" --header 'Content-Type: application/json' \
      --data '{"text": "@AirParadis my flight was cancelled and nobody answers the phone"}' \
      "$base_url/v1/predict")"
    python3 -c '
import json, sys
body = json.loads(sys.argv[1])
items = body.get("predictions", [body]) if isinstance(body, dict) else body
assert items and items[0]["label"] in {"negative", "neutral", "positive"}, body
print("ok POST /v1/predict ->", items[0]["label"], file=sys.stderr)' "$body"
    ;;
  worker | detection)
    check_get /healthz
    check_get /readyz
    ;;
  streamlit)
    check_get /_stcore/health
    ;;
  *)
    echo "unknown kind: $kind" >&2
    exit 2
    ;;
esac
