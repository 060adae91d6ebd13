#!/usr/bin/env bash
# Makes sure the PostgreSQL server programs the store's PostgreSQL tests run are on this machine: Debian's
# postgresql package (initdb, postgres, psql in /usr/lib/postgresql/<version>/bin, and the postgres user the server
# runs as when the tests are root), by apt-get. Installs only what is missing. The tests make clusters of their own
# (haul-test-support's postgres.rs), so the package is told to create no main cluster and so start no service.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "postgres-tools: need root to run: $*" >&2
        return 1
    fi
}

have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }

if ! have_postgres; then
    echo "postgres-tools: installing postgresql with apt-get (no main cluster)" >&2
    # The package's postinst reads this file (not createcluster.d) to decide on a main cluster; kept on install
    # by --force-confold. A main cluster would do no harm (port 5432; the tests take free ports) but wasted work.
    conf=/etc/postgresql-common/createcluster.conf
    if ! grep -qs '^[[:space:]]*create_main_cluster' "$conf"; then
        as_root mkdir -p /etc/postgresql-common
        echo 'create_main_cluster = false' | as_root tee -a "$conf" >/dev/null
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql >/dev/null
fi
have_postgres || { echo "postgres-tools: no /usr/lib/postgresql/*/bin/initdb after installing" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "postgres-tools: the tests run as root and there is no postgres user to run the server as" >&2
    exit 1
fi
