#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, pg_ctl, postgres) are on this machine, so
# that tests/integration/test_destinations.py can start its own throwaway cluster on loopback.
# Nothing is started here, and no system service is used.
#
# Idempotent and quiet when the binaries are already there. Installs Debian's `postgresql`
# package with apt-get when they are missing and this runs as root. Never fails the caller:
# where it cannot install, it says so loudly and the Postgres tests skip.
set -uo pipefail
# Root's cron runs with PATH=/usr/bin:/bin: without the sbin folders dpkg (under apt-get)
# stops with "ldconfig ... not found in PATH", and Debian's system programs live there.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

have_server() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null
}

if have_server; then
    exit 0
fi

shout() {
    {
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! ensure-postgres: $*"
        echo "!!! The PostgreSQL destination tests will be SKIPPED on this machine."
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
}

if ! command -v apt-get >/dev/null; then
    shout "no PostgreSQL server binaries and no apt-get to install them (install PostgreSQL by hand)."
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    shout "no PostgreSQL server binaries; run as root, or: sudo apt-get install -y postgresql"
    exit 0
fi

echo "ensure-postgres: installing the postgresql package with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql; } \
    >/tmp/ensure-postgres.log 2>&1; then
    shout "apt-get install postgresql failed (log: /tmp/ensure-postgres.log)."
    exit 0
fi
if ! have_server; then
    shout "the postgresql package installed but initdb was not found."
    exit 0
fi
echo "ensure-postgres: PostgreSQL server binaries installed" >&2
