# Shell functions for the benchmarks' polls (sourced after private-postgres.sh): one psql session
# kept open for the whole wait, asked the same small query every half second.
#
# Why not `psql -c` in a loop: on the machine being measured, each look then started Debian's psql
# wrapper (a Perl program), psql itself, a TCP connection with SCRAM authentication and a new
# backend. `perf record -a` of whole runs put the client side alone at 6-9 µs of CPU a message
# (6-9% of a core at 10,000 msg/s), taken from the worker, PostgreSQL and nginx.

# db_poll_open URL: opens the session (one at a time: it is bash's coprocess).
db_poll_open() {
    coproc DB_POLL { "$(pg_bindir)/psql" -qtAX -v ON_ERROR_STOP=1 "$1" 2>&1; }
}

# db_poll QUERY: prints the query's one-line answer. Fails (with the answer on stderr) when the
# session has ended or the answer is an error rather than a value.
db_poll() {
    local line
    { printf '%s;\n' "$1" >&"${DB_POLL[1]}"; } 2>/dev/null || { echo "db_poll: the psql session has ended" >&2; return 1; }
    IFS= read -r line <&"${DB_POLL[0]}" || { echo "db_poll: the psql session has ended" >&2; return 1; }
    case $line in
        psql:* | ERROR:* | FATAL:*) echo "db_poll: $line" >&2; return 1 ;;
    esac
    printf '%s\n' "$line"
}

# db_poll_close: ends the session (psql exits at the end of its input) and closes both pipes.
db_poll_close() {
    [ -n "${DB_POLL_PID:-}" ] || return 0
    local pid=$DB_POLL_PID
    eval "exec ${DB_POLL[1]}>&- ${DB_POLL[0]}<&-"
    wait "$pid" 2>/dev/null || true
}
