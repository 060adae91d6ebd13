#!/usr/bin/env bash
# The crate graph of ARCHITECTURE.md as a check: each crate may depend (directly, in normal dependencies) only
# on the haul crates listed for it here, and haul-test-support only as a dev-dependency. A new edge that breaks
# the layering fails CI until ARCHITECTURE.md and this table change together.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
    [haul-core]=""
    [haul-store]="haul-core"
    [haul-engine]="haul-core haul-store"
    [haul-api]="haul-core haul-engine"
    [haul]="haul-api haul-core haul-engine haul-store"
    [haul-test-support]=""
)

direct_deps() {
    cargo tree --offline -p "$1" -e normal --depth 1 --prefix none --format '{p}' \
        | tail -n +2 | awk '{print $1}' | grep '^haul' | sort -u || true
}

failed=0
for crate in "${!allowed[@]}"; do
    for dep in $(direct_deps "$crate"); do
        if [[ " ${allowed[$crate]} " != *" $dep "* ]]; then
            echo "check-deps: $crate depends on $dep, which ARCHITECTURE.md does not allow" >&2
            failed=1
        fi
    done
done

# Handlers reach the store only through the engine: not even a path to it in haul-api's code.
if grep -rnw --include='*.rs' 'haul_store' crates/haul-api/src crates/haul-api/tests; then
    echo "check-deps: haul-api names haul_store; go through haul_engine::service instead" >&2
    failed=1
fi
# haul-core does no I/O and has no runtime.
if grep -rnE --include='*.rs' '\b(tokio|std::fs|std::process|TcpStream|TcpListener|UdpSocket|ToSocketAddrs)\b' \
    crates/haul-core/src; then
    echo "check-deps: haul-core must do no I/O and use no runtime" >&2
    failed=1
fi
# Only haul-store contains SQL.
if grep -rlE --include='*.rs' '\bsqlx\b' crates/haul-engine/src crates/haul-api/src crates/haul/src crates/haul-core/src; then
    echo "check-deps: SQL (sqlx) outside haul-store" >&2
    failed=1
fi

if [ "$failed" -ne 0 ]; then exit 1; fi
echo "check-deps: the crate graph matches ARCHITECTURE.md"
