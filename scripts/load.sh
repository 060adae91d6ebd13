#!/usr/bin/env bash
# Load figures for a real `haul serve` (release build): POST /v1/downloads at concurrency 50 with wrk (the
# jobs it makes are paused, so nothing is fetched), then with 10,000 jobs or more in the store, GET
# /v1/downloads (a page of 100) at concurrency 10, and one call of each foreign API's full list. Prints wrk's
# figures (requests/s, latency percentiles) and each list's time. Needs wrk and curl; not part of CI.
#
#   scripts/load.sh [SECONDS]    # seconds per wrk run, default 10
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN="${1:-10}"

command -v wrk >/dev/null || { echo "load: needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q -p haul
HAUL=target/release/haul
DATA=$(mktemp -d)
LOG=$(mktemp)
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$DATA" "$LOG" "$DATA.lua"; }
trap cleanup EXIT

"$HAUL" serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q "haul listening" "$LOG" 2>/dev/null && break; sleep 0.1; done
BASE=$(grep -o 'http://127.0.0.1:[0-9]*' "$LOG" | head -1)
TOKEN=$(cat "$DATA/token")
echo "haul serve at $BASE (release build, data in $DATA)"

cat >"$DATA.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"url": "http://files.example/file.bin", "paused": true}'
LUA
# The jobs are paused, so the name is never resolved and nothing is fetched.
echo
echo "== POST /v1/downloads, 50 connections, ${SECONDS_PER_RUN} s"
wrk -t2 -c50 -d"${SECONDS_PER_RUN}s" --latency -s "$DATA.lua" "$BASE/v1/downloads" | sed -n '1,20p'

TOTAL=$(curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/downloads?limit=1" | grep -o '"total":[0-9]*' | cut -d: -f2)
if [ "$TOTAL" -lt 10000 ]; then
    echo "only $TOTAL jobs; adding more with a longer run"
    wrk -t2 -c50 -d"$((SECONDS_PER_RUN * 3))s" -s "$DATA.lua" "$BASE/v1/downloads" >/dev/null
    TOTAL=$(curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/downloads?limit=1" | grep -o '"total":[0-9]*' | cut -d: -f2)
fi
echo
echo "== GET /v1/downloads (a page of 100 of $TOTAL jobs), 10 connections, ${SECONDS_PER_RUN} s"
wrk -t2 -c10 -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $TOKEN" "$BASE/v1/downloads" | sed -n '1,20p'

echo
echo "== one full list through each API, $TOTAL jobs"
time_of() { curl -s -o /dev/null -w "%{http_code} %{size_download} bytes in %{time_total} s" "$@"; }
ACCOUNT=$(cat "$DATA/account")
echo "  GET /v1/downloads?limit=1000   $(time_of -H "Authorization: Bearer $TOKEN" "$BASE/v1/downloads?limit=1000")"
echo "  GET /api/downloads (yt-dlp app) $(time_of -H "Authorization: Bearer $TOKEN" "$BASE/api/downloads")"
echo "  GET /list (Surge)               $(time_of -H "Authorization: Bearer $TOKEN" "$BASE/list")"
echo "  GET /client/v4/.../stream       $(time_of -H "Authorization: Bearer $TOKEN" "$BASE/client/v4/accounts/$ACCOUNT/stream")"
