#!/usr/bin/env bash
# Makes sure the programs the media tests run are on this machine: ffmpeg and ffprobe (Debian's ffmpeg package,
# by apt-get) and yt-dlp at the pinned version (by pip). Installs only what is missing; an existing yt-dlp of
# another version is used as it is, with a note.
set -euo pipefail

YT_DLP_VERSION=2026.10.26

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "media-tools: need root to run: $*" >&2
        return 1
    fi
}

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
    echo "media-tools: installing ffmpeg with apt-get" >&2
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi

if ! command -v yt-dlp >/dev/null; then
    echo "media-tools: installing yt-dlp $YT_DLP_VERSION with pip" >&2
    if [ "$(id -u)" -eq 0 ]; then
        python3 -m pip install -q --root-user-action=ignore "yt-dlp==$YT_DLP_VERSION"
    else
        python3 -m pip install -q --user "yt-dlp==$YT_DLP_VERSION"
        export PATH="$HOME/.local/bin:$PATH"
    fi
    # pyenv puts programs on PATH through shims made after an install.
    if command -v pyenv >/dev/null; then pyenv rehash; fi
    command -v yt-dlp >/dev/null || { echo "media-tools: yt-dlp is installed but not on PATH" >&2; exit 1; }
elif [ "$(yt-dlp --version)" != "$YT_DLP_VERSION" ]; then
    echo "media-tools: using yt-dlp $(yt-dlp --version); the tests are pinned to $YT_DLP_VERSION" >&2
fi
