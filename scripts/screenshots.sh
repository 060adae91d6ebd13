#!/usr/bin/env bash
# Retakes the page's screenshots in docs/screenshots (desktop 1280 px and phone 360 px wide, light and dark):
# the browser test that shoots them saves them when HAUL_SCREENSHOTS names a directory. Needs chromium and
# chromedriver (scripts/browser-tools.sh) and, for the video's thumbnail, ffmpeg and yt-dlp (scripts/media-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/browser-tools.sh
HAUL_SCREENSHOTS="$PWD/docs/screenshots" HAUL_REQUIRE_BROWSER=1 \
    cargo test -q -p haul --test browser -- --exact screenshots_in_light_and_dark_at_desktop_and_phone_width
ls -l docs/screenshots
