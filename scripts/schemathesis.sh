#!/usr/bin/env bash
# Runs schemathesis (PyPI) against the OpenAPI document of a live `haul serve`: every operation, with
# generated valid and invalid requests, checked for 5xx, undocumented status codes and content types, schema
# conformance and auth. Not part of CI's test command (it takes minutes); run it before changing /v1.
#
#   scripts/schemathesis.sh [EXAMPLES]   # generated cases per operation, default 30
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${1:-30}"
command -v schemathesis >/dev/null || python3 -m pip install -q "schemathesis==4.32.5"
cargo build -q -p haul
DATA=$(mktemp -d)
LOG=$(mktemp)
target/debug/haul serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DATA" "$LOG"' EXIT
for _ in $(seq 100); do grep -q "haul listening" "$LOG" 2>/dev/null && break; sleep 0.1; done
BASE=$(grep -o 'http://127.0.0.1:[0-9]*' "$LOG" | head -1)
# ensure_resource_availability (ST302) is left out: it fetches `/file` and `/renditions/NAME/file` of a job
# it has just created and expects them to exist, but a file is served only once the download is complete
# (a documented 404 until then).
# DELETE /v1/keys/{id} is left out too: the fuzzer finds the token's own key id in GET /v1/keys and revokes it,
# after which every other operation can only answer 401.
schemathesis run "$BASE/v1/openapi.json" -H "Authorization: Bearer $(cat "$DATA/token")" \
    --exclude-path '/v1/keys/{id}' \
    --checks all --exclude-checks ensure_resource_availability -n "$EXAMPLES" --seed 1 --request-timeout 10
