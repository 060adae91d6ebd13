#!/usr/bin/env bash
# Makes the Python virtual environment the SDK conformance tests (crates/haul/tests/sdk.rs) drive haul through:
# the official VideoDB and Cloudflare SDKs at pinned versions, in target/sdk-venv. Does nothing when it is
# already there with those versions. test.sh runs it before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/sdk-venv
PINS=("videodb==0.5.1" "cloudflare==5.9.0")

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version
sys.exit(0 if all(version(pin.split("==")[0]) == pin.split("==")[1] for pin in sys.argv[1:]) else 1)
PY
    exit 0
fi
echo "sdk-venv: installing ${PINS[*]} into $VENV" >&2
mkdir -p target
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}"
