#!/usr/bin/env bash
# Message write-path benchmark: the highest rate of persisted messages with p99 ≤ 50 ms
# (publish → MESSAGE on the channel) for P publishing STOMP sessions and S subscribers.
#
#   perf/write_bench.sh                       # P = 1, 16, 100 × S = 10, 100
#   WRITE_RUNS="100:10" DURATION=6 perf/write_bench.sh
#   SERVER_BIN=/path/to/older/discodeit perf/write_bench.sh     # the same against another build
#
# Every run: a fresh release server and a fresh database on a PRIVATE PostgreSQL cluster
# started here (scripts/lib.sh pg_start with a temporary DISCODEIT_DATA and a free port) with
# fsync and synchronous_commit ON — never the shared fsync-off one. S subscribers (raw
# WebSocket, one user) on one public channel; P publishers, each its own user and session,
# SEND /pub/messages at R/s in total on a fixed schedule without waiting for replies (a
# pipelining client), content = send time in µs. After an unmeasured 2 s warm-up at the first
# rate, the rate ladder of each run (WRITE_RATES_P,
# e.g. WRITE_RATES_100="1000,2000,...") stops after the first rate whose p99 exceeds
# STOP_P99_MS (250: beyond it the backlog only grows) or that loses a message. After each run
# the database must hold every published message ("persisted"). Prints one RESULT per rate,
# then the best rate per (P, S) with p99 ≤ MAX_P99_MS (50), and with p99 ≤ 100 and 200 ms for
# comparisons on a loaded machine.
#
# WRITE_MODE=broker runs the same ladders with SEND to a plain broker destination (no
# database): the floor the machine and the fan-out give, to read the write path's numbers
# against.
#
# Knobs: WRITE_RUNS ("P:S ..."), WRITE_MODE (messages), DURATION (8 s per rate), MAX_P99_MS (50), STOP_P99_MS (250),
# BENCH_OUT (logs), BENCH_SERVER_ENV ("NAME=value ..." for the server), BENCH_NO_BUILD=1,
# SERVER_BIN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A private cluster with fsync on, whatever the calling shell uses.
BENCH_PG_DIR=$(mktemp -d /tmp/discodeit-write-bench-pg.XXXXXX)
chmod 755 "$BENCH_PG_DIR"
export DISCODEIT_DATA="$BENCH_PG_DIR"
unset DISCODEIT_PG_FAST DATABASE_URL DISCODEIT_PG_ADMIN_URL
# shellcheck source=perf/bench_lib.sh
source perf/bench_lib.sh
DISCODEIT_PG_PORT=$(free_port)
export DISCODEIT_PG_PORT

RUNS="${WRITE_RUNS:-1:10 1:100 16:10 16:100 100:10 100:100}"
MODE="${WRITE_MODE:-messages}"
DURATION="${DURATION:-8}"
MAX_P99_MS="${MAX_P99_MS:-50}"
STOP_P99_MS="${STOP_P99_MS:-250}"
RATES_1="${WRITE_RATES_1:-50,100,200,300,400,600,800,1000,1500,2000}"
RATES_16="${WRITE_RATES_16:-200,500,1000,1500,2000,3000,4000,5000,6000}"
RATES_100="${WRITE_RATES_100:-500,1000,2000,3000,4000,5000,6000,8000}"

write_cleanup() {
    local rc=$?
    bench_cleanup || true
    pg_stop >/dev/null 2>&1 || true
    rm -rf "$BENCH_PG_DIR" "${DISCODEIT_PG_DATA:-/nonexistent}"
    return $rc
}

bench_setup write
trap write_cleanup EXIT
settings=$(_bench_psql -tAc "SELECT current_setting('fsync') || ' ' || current_setting('synchronous_commit')")
[[ $settings == "on on" ]] || { echo "fsync/synchronous_commit must be on, got: $settings" >&2; exit 1; }
{
    bench_note
    echo "server: $SERVER_BIN ${BENCH_SERVER_ENV:-} (clean environment: in-process bus, in-memory registry)"
    echo "postgres: private cluster on port $DISCODEIT_PG_PORT, fsync=on synchronous_commit=on"
} | tee "$BENCH_OUT/host.txt"

logs=()
for run in $RUNS; do
    publishers=${run%%:*}
    subscribers=${run#*:}
    rates_var="RATES_$publishers"
    rates="${!rates_var:-${WRITE_RATES:-500,1000,2000}}"
    # A fresh database per run, so "persisted" counts this run's messages only.
    _bench_psql -c "DROP DATABASE IF EXISTS $BENCH_DB" -c "CREATE DATABASE $BENCH_DB"
    bench_server_start
    log="$BENCH_OUT/write-$publishers-$subscribers.log"
    logs+=("$log")
    echo "== $publishers publishing sessions, $subscribers subscribers, rates $rates/s for ${DURATION}s each (server pid $BENCH_PID)"
    "$LOADGEN" stomp --mode "$MODE" --url "$BENCH_URL" --server-pid "$BENCH_PID" \
        --conns "$subscribers" --per-user 100 --publishers "$publishers" --rate "$rates" \
        --duration "$DURATION" --warmup 2 --sources 8 --max-p99-ms "$STOP_P99_MS" \
        --admin-user "$BENCH_ADMIN" --admin-password "$BENCH_ADMIN_PASSWORD" \
        2> >(tee -a "$log.err" >&2) | tee "$log"
    bench_server_stop
    [[ $MODE == messages ]] || continue
    published=$(sed -n 's/^\(RESULT\|WARMUP\) .*"published":\([0-9]*\).*/\2/p' "$log" | awk '{s += $1} END {print s + 0}')
    persisted=$(_bench_psql -d "$BENCH_DB" -tAc "SELECT count(*) FROM messages")
    echo "persisted $persisted of $published published" | tee -a "$log"
    [[ $persisted == "$published" ]] || echo "WARNING: persisted != published" | tee -a "$log"
done
"$LOADGEN" table "${logs[@]}" | tee "$BENCH_OUT/table.md"
for limit in "$MAX_P99_MS" 100 200; do
    echo
    "$LOADGEN" best "$limit" "${logs[@]}" | tee -a "$BENCH_OUT/best.md"
done
