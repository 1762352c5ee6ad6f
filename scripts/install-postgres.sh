#!/usr/bin/env bash
# Install Debian's PostgreSQL server (for scripts/pg-cluster.sh) if it is not there yet.
#
# Skips everything when /usr/lib/postgresql/*/bin/initdb already exists. Otherwise installs
# the "postgresql" package with apt-get (needs root, or sudo), and then makes sure that the
# "main" cluster which the Debian package creates is NOT left running: the tests use their
# own throwaway cluster (scripts/pg-cluster.sh) and a stray server on 5432 only wastes memory.
# The package's cluster is also set to start "manual", so a later `service postgresql start`
# or reboot does not bring it back.
set -euo pipefail

log() { printf 'install-postgres: %s\n' "$*" >&2; }

have_server() {
    local f
    for f in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$f" ] && return 0
    done
    return 1
}

if have_server; then
    log "PostgreSQL server already installed: $(ls -d /usr/lib/postgresql/*/bin | tr '\n' ' ')"
    exit 0
fi

command -v apt-get >/dev/null || { log "error: no apt-get: install a PostgreSQL server by hand"; exit 1; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { log "error: need root (or sudo) to install packages"; exit 1; }
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

start=$(date +%s)
log "apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
log "apt-get install postgresql"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install "${APT_OPTS[@]}" --no-install-recommends postgresql </dev/null
log "installed in $(($(date +%s) - start))s"

have_server || { log "error: postgresql installed but no /usr/lib/postgresql/*/bin/initdb"; exit 1; }

# The package creates (and, where services may start, starts) a "main" cluster. Stop it.
# pg_ctlcluster goes through systemd when systemd runs the machine, else calls pg_ctl itself.
if command -v pg_lsclusters >/dev/null; then
    while read -r ver name _port status _rest; do
        [ -n "$ver" ] || continue
        conf=/etc/postgresql/$ver/$name/start.conf
        if [ -f "$conf" ]; then
            echo manual | "${SUDO[@]}" tee "$conf" >/dev/null
        fi
        case $status in
        online*)
            log "stopping the package's cluster $ver/$name"
            "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop -m fast ||
                log "warning: could not stop cluster $ver/$name"
            ;;
        esac
    done < <(pg_lsclusters --no-header 2>/dev/null || true)
fi

if command -v pg_lsclusters >/dev/null && pg_lsclusters --no-header 2>/dev/null | grep -q online; then
    log "warning: a Debian-managed cluster is still running:"
    pg_lsclusters >&2 || true
fi
log "done"
