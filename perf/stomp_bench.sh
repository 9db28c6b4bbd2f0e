#!/usr/bin/env bash
# STOMP fan-out benchmark: N subscribers on one public channel over raw WebSocket
# (/ws/websocket, 100 per user; STOMP_TRANSPORT=sockjs: SockJS's websocket transport), M
# publishers (each its own user) sending SEND /pub/messages at R/s in total for D seconds;
# every message is one MESSAGE to every subscriber.
#
#   perf/stomp_bench.sh                         # N = 1000, 10000, 18000 with two rates each
#   STOMP_RUNS="1000:50,200 10000:10,30" PUBLISHERS=40 DURATION=10 perf/stomp_bench.sh
#
# Two modes (STOMP_MODES, default both): `messages` sends SEND /pub/messages for a public
# channel (one database insert per message, subscribers on /sub/channels.{id}.messages);
# `broker` sends to a plain in-memory broker destination /sub/<run> (no database), which
# measures the hub's fan-out alone.
#
# Each run gets a fresh release server (clean RSS baseline) on one fresh database; the
# loadgen splits the subscribers over ceil(N/9000) worker processes (20,000 open files each).
# Prints one line per run while it goes, then a Markdown table (also in $BENCH_OUT/table.md).
set -euo pipefail
# LOADGEN_ARGS: more loadgen options, e.g. "--max-p99-ms 1000" (stop the rate ladder at the
# first rate past it) or "--warmup 2". SERVER_BIN, BENCH_NO_BUILD, BENCH_SERVER_ENV: see
# perf/bench_lib.sh.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=perf/bench_lib.sh
source perf/bench_lib.sh

RUNS="${STOMP_RUNS:-1000:100,400 10000:10,40 18000:6,22}"
DURATION="${DURATION:-10}"
PUBLISHERS="${PUBLISHERS:-40}"
MODES="${STOMP_MODES:-messages broker}"
# How subscribers connect: raw (/ws/websocket) or sockjs (/ws/{server}/{session}/websocket).
TRANSPORT="${STOMP_TRANSPORT:-raw}"

bench_setup stomp
bench_note | tee "$BENCH_OUT/host.txt"
logs=()
for mode in $MODES; do
    for run in $RUNS; do
        conns=${run%%:*}
        rates=${run#*:}
        bench_server_start
        log="$BENCH_OUT/stomp-$TRANSPORT-$mode-$conns.log"
        logs+=("$log")
        echo "== STOMP ($mode, $TRANSPORT): $conns subscribers, $PUBLISHERS publishers, rates $rates/s for ${DURATION}s (server pid $BENCH_PID)"
        # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of options
        "$LOADGEN" stomp --mode "$mode" --url "$BENCH_URL" --server-pid "$BENCH_PID" \
            --conns "$conns" --per-user 100 --publishers "$PUBLISHERS" --rate "$rates" \
            --duration "$DURATION" --sources 8 --admin-user "$BENCH_ADMIN" \
            --admin-password "$BENCH_ADMIN_PASSWORD" --transport "$TRANSPORT" ${LOADGEN_ARGS:-} \
            2> >(tee -a "$log.err" >&2) | tee "$log"
        bench_server_stop
    done
done
"$LOADGEN" table "${logs[@]}" | tee "$BENCH_OUT/table.md"
