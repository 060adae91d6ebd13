#!/usr/bin/env bash
# Makes sure the programs the browser tests drive are on this machine: Debian's chromium and chromium-driver
# (chromedriver), by apt-get. Installs only what is missing.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "browser-tools: need root to run: $*" >&2
        return 1
    fi
}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "browser-tools: installing chromium and chromium-driver with apt-get" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >/dev/null
fi
# The README's examples, which a test runs as they are written, use curl and jq.
if ! command -v curl >/dev/null || ! command -v jq >/dev/null; then
    echo "browser-tools: installing curl and jq with apt-get" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl jq >/dev/null
fi
command -v chromium >/dev/null || { echo "browser-tools: chromium is not on PATH" >&2; exit 1; }
command -v chromedriver >/dev/null || { echo "browser-tools: chromedriver is not on PATH" >&2; exit 1; }
