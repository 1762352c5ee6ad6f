#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for tests and local development.
#
#   scripts/pg-cluster.sh start DIR   create (if missing) and start a cluster in DIR;
#                                     prints the SQLAlchemy URL (the only line on stdout)
#                                     and writes it to DIR/url
#   scripts/pg-cluster.sh stop DIR    stop it (pg_ctl stop -m fast); no error if not running
#   scripts/pg-cluster.sh url DIR     print the URL of the running cluster
#   scripts/pg-cluster.sh status DIR  exit 0 if running, 3 if not
#
# The cluster listens only on 127.0.0.1 (a free port, tried upwards from $PG_PORT_BASE,
# default 55432) and on a unix socket inside DIR. Authentication is "trust" for local and
# loopback connections: it is throwaway and loopback only, never use it for real data.
# Its role ($PG_ROLE, default "segmenti") is a superuser so that tests can create and drop
# databases and schemas. Durability is switched off (fsync, full_page_writes, ...) for speed.
#
# Debian's server binaries refuse to run as root: as root, the server runs as the
# "postgres" system user and DIR is chowned to it. As any other user, it runs as that user.
# The binaries are taken from the highest /usr/lib/postgresql/*/bin (or $PG_BINDIR).
# All progress messages go to stderr.
set -euo pipefail

PG_DB=segmenti
PG_ROLE=${PG_ROLE:-segmenti}
PG_PORT_BASE=${PG_PORT_BASE:-55432}
PG_PORT_TRIES=${PG_PORT_TRIES:-100}
PG_START_TIMEOUT=${PG_START_TIMEOUT:-60}

log() { printf 'pg-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $0 {start|stop|url|status} DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
CMD=$1
[ -n "$2" ] || usage
case $CMD in
start) mkdir -p -- "$2" ;;
stop)
    if [ ! -d "$2" ]; then
        log "no cluster in $2, nothing to stop"
        exit 0
    fi
    ;;
url | status) [ -d "$2" ] || die "no cluster in $2 (run: $0 start $2)" ;;
*) usage ;;
esac
DIR=$(cd -- "$2" && pwd -P)

# RUN holds the data directory, the server log and the unix socket. It is DIR itself, unless
# the server's user cannot reach DIR (e.g. a checkout under /root, mode 0700) or DIR's path is
# too long for a unix socket: then it is a directory under /tmp, named in DIR/rundir.
set_run() {
    RUN=$1
    DATA=$RUN/data
    LOGFILE=$RUN/postgres.log
}
if [ -f "$DIR/rundir" ]; then
    set_run "$(cat "$DIR/rundir")"
else
    set_run "$DIR"
fi

find_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        [ -x "$PG_BINDIR/pg_ctl" ] || die "PG_BINDIR=$PG_BINDIR has no pg_ctl"
        echo "$PG_BINDIR"
        return
    fi
    local d best="" bestv=-1 v
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] || continue
        v=$(basename "$(dirname "$d")")
        v=${v%%.*}
        [[ $v =~ ^[0-9]+$ ]] || continue
        if [ "$v" -gt "$bestv" ]; then best=$d; bestv=$v; fi
    done
    [ -n "$best" ] || die "no PostgreSQL server found under /usr/lib/postgresql/*/bin (run scripts/install-postgres.sh)"
    echo "$best"
}

BIN=$(find_bindir)

# Run a server-side command as the cluster's owner. fd 9 (our lock) is closed so that the
# postmaster started through pg_ctl does not inherit, and hold, the lock.
if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' system user (install the postgresql package)"
    as_owner() { (cd / && exec runuser -u postgres -- "$@" 9>&-); }
    OWNER=postgres
else
    as_owner() { (cd / && exec "$@" 9>&-); }
    OWNER=$(id -un)
fi

lock() {
    exec 9>"$DIR/.lock"
    flock -w 120 9 || die "could not lock $DIR/.lock"
}

is_running() {
    [ -f "$DATA/PG_VERSION" ] || return 1
    as_owner "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

# Port of the running cluster, from line 4 of postmaster.pid.
running_port() {
    sed -n 4p "$DATA/postmaster.pid" 2>/dev/null
}

url_for_port() {
    echo "postgresql+psycopg://${PG_ROLE}@127.0.0.1:$1/${PG_DB}"
}

# 0 if a TCP listener could bind 127.0.0.1:PORT (with SO_REUSEADDR, as the server does)
# and no other cluster holds a socket lock file for that port in DIR.
port_free() {
    local port=$1
    [ ! -e "$RUN/.s.PGSQL.$port.lock" ] || return 1
    python3 - "$port" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.close()
EOF
}

choose_run() {
    local reason=""
    # A socket path ("$RUN/.s.PGSQL.NNNNN") must fit in 107 bytes.
    if [ "${#DIR}" -gt 90 ]; then
        reason="its path is too long for a unix socket"
    elif [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$DIR" 2>/dev/null; then
        reason="user postgres cannot reach it"
    fi
    if [ -z "$reason" ]; then
        rm -f -- "$DIR/rundir" "$DIR/run"
        set_run "$DIR"
        return
    fi
    set_run "/tmp/segmenti-pg-$(id -u)-$(printf '%s' "$DIR" | md5sum | cut -c1-12)"
    log "$DIR: $reason; the cluster's data and socket go to $RUN (linked as $DIR/run)"
    printf '%s\n' "$RUN" >"$DIR/rundir"
    ln -sfn -- "$RUN" "$DIR/run"
}

prepare_run() {
    [ ! -L "$RUN" ] || die "$RUN is a symlink, refusing to use it"
    mkdir -p -- "$RUN"
    touch "$LOGFILE"
    [ "$(id -u)" -eq 0 ] || return 0
    chown "$OWNER:" "$RUN" "$LOGFILE"
    chmod 0755 "$RUN"
    if [ -e "$DATA" ] && [ "$(stat -c %U "$DATA")" != "$OWNER" ]; then
        chown -R "$OWNER:" "$DATA"
    fi
    runuser -u postgres -- test -w "$RUN" ||
        die "user postgres cannot write to $RUN (is a parent directory not searchable by it?)"
}

init_cluster() {
    local locale_opts=(--locale=C)
    # Byte-order collation (like SQLite), but UTF-8 aware upper()/lower()/ILIKE where possible.
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then
        locale_opts=(--lc-collate=C --lc-ctype=C.UTF-8 --lc-messages=C --lc-monetary=C
            --lc-numeric=C --lc-time=C)
    fi
    log "initdb in $DATA ($BIN)"
    rm -rf -- "$DATA"
    if [ "$(id -u)" -eq 0 ]; then
        install -d -o "$OWNER" -g "$(id -gn "$OWNER")" -m 0700 "$DATA"
    else
        install -d -m 0700 "$DATA"
    fi
    as_owner "$BIN/initdb" -D "$DATA" --username=postgres --auth=trust --encoding=UTF8 \
        "${locale_opts[@]}" --no-sync >"$RUN/initdb.log" 2>&1 ||
        { cat "$RUN/initdb.log" >&2; die "initdb failed"; }

    # Later settings win: these override what initdb wrote above them.
    cat >>"$DATA/postgresql.conf" <<EOF

# ---- added by scripts/pg-cluster.sh: throwaway test cluster, NOT durable ----
listen_addresses = '127.0.0.1'
unix_socket_directories = '$RUN'
unix_socket_permissions = 0777
max_connections = 200
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
max_wal_size = 1GB
checkpoint_timeout = 30min
jit = off
ssl = off
log_destination = 'stderr'
logging_collector = off
log_min_messages = warning
log_min_error_statement = error
log_line_prefix = '%m [%p] %q%u@%d '
timezone = 'UTC'
log_timezone = 'UTC'
EOF
    # Loopback-only trust authentication; nothing else may connect.
    cat >"$DATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
}

start_server() {
    local port tries=0
    port=$PG_PORT_BASE
    while [ "$tries" -lt "$PG_PORT_TRIES" ]; do
        if port_free "$port"; then
            log "starting on 127.0.0.1:$port (log: $LOGFILE)"
            if as_owner "$BIN/pg_ctl" start -D "$DATA" -l "$LOGFILE" -w -t "$PG_START_TIMEOUT" \
                -o "-p $port" >/dev/null; then
                return 0
            fi
            # Someone may have taken the port between our check and the bind: try the next one.
            if is_running; then return 0; fi
            if ! tail -n 20 "$LOGFILE" | grep -qiE 'could not (bind|create listen)|address already in use|lock file .* already exists'; then
                tail -n 30 "$LOGFILE" >&2 || true
                die "PostgreSQL failed to start"
            fi
            log "port $port was taken, trying the next one"
        fi
        port=$((port + 1))
        tries=$((tries + 1))
    done
    die "no free port in ${PG_PORT_BASE}..$((PG_PORT_BASE + PG_PORT_TRIES - 1))"
}

ensure_db() {
    local port=$1
    as_owner "$BIN/psql" -X -q -h "$RUN" -p "$port" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -v role="$PG_ROLE" -v db="$PG_DB" >/dev/null <<'EOF'
SELECT format('CREATE ROLE %I LOGIN SUPERUSER', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
EOF
}

publish_url() {
    local url
    url=$(url_for_port "$1")
    printf '%s\n' "$url" >"$DIR/url"
    printf '%s\n' "$url"
}

cmd_start() {
    lock
    if is_running; then
        local port
        port=$(running_port)
        [ -n "$port" ] || die "cluster in $DIR is running but its port is unknown"
        log "already running on 127.0.0.1:$port"
        ensure_db "$port"
        publish_url "$port"
        return
    fi
    choose_run
    prepare_run
    if [ ! -f "$DATA/PG_VERSION" ]; then
        init_cluster
    elif [ "$(cat "$DATA/PG_VERSION")" != "$(basename "$(dirname "$BIN")")" ]; then
        log "cluster in $DATA is version $(cat "$DATA/PG_VERSION"), server is $BIN: recreating it"
        init_cluster
    fi
    rm -f -- "$DIR/url"
    start_server
    local port
    port=$(running_port)
    ensure_db "$port"
    publish_url "$port"
}

cmd_stop() {
    lock
    if ! [ -f "$DATA/PG_VERSION" ]; then
        log "no cluster in $DIR, nothing to stop"
    elif is_running; then
        log "stopping cluster in $DIR"
        as_owner "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null ||
            as_owner "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 30 >/dev/null
    else
        log "cluster in $DIR is not running"
    fi
    rm -f -- "$DIR/url"
}

cmd_url() {
    is_running || die "no cluster running in $DIR (run: $0 start $2)"
    url_for_port "$(running_port)"
}

case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
url) cmd_url "$@" ;;
status)
    if is_running; then
        log "running on 127.0.0.1:$(running_port)"
        exit 0
    fi
    log "not running"
    exit 3
    ;;
*) usage ;;
esac
