#!/usr/bin/env bash
# The whole test suite: the one command the README gives and CI runs. The media tests run the real ffmpeg and
# yt-dlp; scripts/media-tools.sh installs them first where they are missing.
set -euo pipefail
cd "$(dirname "$0")"
./scripts/media-tools.sh
exec cargo test --workspace --all-targets "$@"
