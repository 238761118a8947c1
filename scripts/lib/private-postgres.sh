# Shell functions to run a private, throwaway PostgreSQL cluster (sourced by scripts/test and
# scripts/bench). PostgreSQL refuses to run as root, so as root the server runs as the
# `postgres` OS user that Debian's postgresql package creates.

pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] || { echo "herald: PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)" >&2; return 1; }
    echo "$d"
}

# as_pg_user CMD...: runs CMD as the cluster's OS user.
as_pg_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start DIR: initdb into DIR/data and start on a free port on 127.0.0.1 (and a socket in DIR).
# Sets PG_DIR, PG_PORT, PG_PASSWORD and PG_URL (a URI to the `postgres` database over TCP).
# PG_SERVER_OPTIONS replaces the server settings below (tests: no fsync, a throwaway cluster).
pg_start() {
    PG_DIR=$1
    local bin; bin=$(pg_bindir) || return 1
    mkdir -p "$PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
    chmod 755 "$PG_DIR"
    # Local socket: trust. TCP: password (scram), so wrong-password handling can be tested.
    PG_PASSWORD=${PG_PASSWORD:-herald}
    echo "$PG_PASSWORD" >"$PG_DIR/pwfile"; chmod 644 "$PG_DIR/pwfile"
    as_pg_user "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            --pwfile="$PG_DIR/pwfile" -E UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    local try
    for try in 1 2 3 4 5 6 7 8; do
        PG_PORT=$(( 20000 + RANDOM % 30000 ))
        if as_pg_user "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
            -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 ${PG_SERVER_OPTIONS:--c max_connections=1000 -c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off}" >/dev/null 2>&1; then
            PG_URL="postgresql://postgres:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"
            return 0
        fi
    done
    echo "herald: could not start a private PostgreSQL (see $PG_DIR/server.log)" >&2
    tail -n 5 "$PG_DIR/server.log" >&2 || true
    return 1
}

# pg_stop: stops the cluster started by pg_start and removes its directory.
pg_stop() {
    [ -n "${PG_DIR:-}" ] || return 0
    local bin; bin=$(pg_bindir) || return 0
    as_pg_user "$bin/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
    PG_DIR=
}
