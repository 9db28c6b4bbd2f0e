#!/usr/bin/env bash
# SSE fan-out benchmark: K streams on GET /api/sse (100 per user), an admin creating public
# channels at R/s for D seconds (each one `channels.refresh` event to every stream).
#
#   perf/sse_bench.sh                      # K = 1000, 10000, 18000 with two rates each
#   SSE_RUNS="1000:100,400 10000:10,40" DURATION=10 perf/sse_bench.sh
#
# Each run gets a fresh release server (clean RSS baseline) on one fresh database; the
# loadgen splits the streams over ceil(K/9000) worker processes (20,000 open files each).
# Prints one line per run while it goes, then a Markdown table (also in $BENCH_OUT/table.md).
set -euo pipefail
# LOADGEN_ARGS: more loadgen options, e.g. "--max-p99-ms 1000" (stop the rate ladder at the
# first rate past it) or "--warmup 2". SERVER_BIN, BENCH_NO_BUILD, BENCH_SERVER_ENV: see
# perf/bench_lib.sh.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=perf/bench_lib.sh
source perf/bench_lib.sh

RUNS="${SSE_RUNS:-1000:100,400 10000:10,40 18000:6,22}"
DURATION="${DURATION:-10}"

bench_setup sse
bench_note | tee "$BENCH_OUT/host.txt"
logs=()
for run in $RUNS; do
    conns=${run%%:*}
    rates=${run#*:}
    bench_server_start
    log="$BENCH_OUT/sse-$conns.log"
    logs+=("$log")
    echo "== SSE: $conns streams, rates $rates/s for ${DURATION}s (server pid $BENCH_PID)"
    # shellcheck disable=SC2086 # LOADGEN_ARGS is a list of options
    "$LOADGEN" sse --url "$BENCH_URL" --server-pid "$BENCH_PID" --conns "$conns" \
        --per-user 100 --rate "$rates" --duration "$DURATION" --sources 8 \
        --admin-user "$BENCH_ADMIN" --admin-password "$BENCH_ADMIN_PASSWORD" ${LOADGEN_ARGS:-} \
        2> >(tee -a "$log.err" >&2) | tee "$log"
    bench_server_stop
done
"$LOADGEN" table "${logs[@]}" | tee "$BENCH_OUT/table.md"
