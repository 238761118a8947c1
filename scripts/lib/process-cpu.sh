# Shell functions for the benchmarks' CPU figures (sourced after private-postgres.sh): CPU time
# (user + system, in clock ticks: `getconf CLK_TCK` a second) that a server's processes used so
# far. Sampled before and after a run, the difference divided by the messages is the CPU a
# message, which barely moves when the processes compete for the cores, unlike msg/s.
# A child that exits between `pgrep` and its read is skipped (`|| true`): under `pipefail` its
# failed read would fail the function, and under `set -e` end a caller's run without a word.

# pg_cpu_ticks: PostgreSQL's (the cluster of $PG_DIR): the postmaster's own and its reaped
# children's (sessions that ended, such as a stopped worker's), plus its live children's.
pg_cpu_ticks() {
    local pm; pm=$(head -1 "$PG_DIR/data/postmaster.pid")
    { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
      for c in $(pgrep -P "$pm"); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true; done; } | awk '{s += $1} END {print s}'
}

# nginx_cpu_ticks PID_FILE: the nginx whose master's pid is in PID_FILE, master and workers.
nginx_cpu_ticks() {
    local master; master=$(cat "$1")
    { awk '{print $14 + $15}' "/proc/$master/stat"
      for c in $(pgrep -P "$master"); do awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true; done; } | awk '{s += $1} END {print s}'
}
