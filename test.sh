#!/usr/bin/env bash
# The whole test suite: the one command the README gives and CI runs.
set -euo pipefail
cd "$(dirname "$0")"
exec cargo test --workspace --all-targets "$@"
