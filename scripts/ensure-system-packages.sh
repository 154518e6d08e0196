#!/usr/bin/env bash
# Installs the Debian packages the tests drive (headless Chromium) when they are missing; checks the
# Pub/Sub emulator, which comes with the machine image and cannot be installed from a registry here.
set -euo pipefail
# chromium: the browser end-to-end test; postgresql: the feedback store's PostgreSQL tests.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: sudo apt-get install ${missing[*]} (tests that need them skip)" >&2
  fi
fi
if ! ls /usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar >/dev/null 2>&1; then
  echo "the Pub/Sub emulator jar is missing: install the Debian package google-cloud-cli-pubsub-emulator" >&2
  exit 1
fi
