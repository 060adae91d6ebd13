#!/usr/bin/env bash
# The whole test suite: the one command the README gives and CI runs. The media tests run the real ffmpeg and
# yt-dlp; scripts/media-tools.sh installs them first where they are missing. The SDK tests drive haul through the
# official VideoDB and Cloudflare SDKs, which scripts/sdk-venv.sh installs (pinned) into target/sdk-venv. The
# browser tests drive Debian's chromium through chromedriver; scripts/browser-tools.sh installs both. The
# PostgreSQL tests start servers of their own from Debian's postgresql, which scripts/postgres-tools.sh installs.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/media-tools.sh
./scripts/sdk-venv.sh
./scripts/browser-tools.sh
./scripts/postgres-tools.sh
exec cargo test --workspace --all-targets "$@"
