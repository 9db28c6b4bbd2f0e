#!/usr/bin/env bash
# Realtime fan-out, before vs after in one sitting (issue 9), and metrics on vs off (issue 12):
# runs perf/stomp_bench.sh and perf/sse_bench.sh against two prebuilt release servers,
# alternating them, and collects every table under one directory.
#
#   BEFORE=/var/tmp/bin-before AFTER=/var/tmp/bin-after perf/realtime_ab.sh
#   AB_STEPS="stomp10k sse10k stomp1k" SATURATION_RATE=160 perf/realtime_ab.sh
#
# Steps (AB_STEPS, default all, in this order):
#   stomp10k  10,000 raw-WebSocket STOMP subscribers, broker mode, rate ladder
#             $STOMP10K_RATES stopping at the first p99 > 1 s; after, then before.
#             Its first rate (10/s = 100k deliveries/s) is "one message to 10k subscribers".
#   sse10k    10,000 SSE streams, ladder $SSE10K_RATES, same stop rule; after, then before.
#   stomp1k   1,000 STOMP subscribers, broker mode, ladder $STOMP1K_RATES (no stop: the
#             last rates are the overload); before runs $STOMP1K_BEFORE_RATES.
#   metrics   10,000 STOMP subscribers at $SATURATION_RATE/s (after binary), metrics
#             on/off/on/off.
#   sockjs10k 10,000 SockJS-websocket STOMP subscribers, ladder $STOMP10K_RATES; after, then
#             before.
#   profile   `perf record -g` of the after server during one rate of each case in
#             $PROFILE_CASES (kind:conns:rate, kind stomp or sse; default
#             "stomp:10000:$SATURATION_RATE"), report in $OUT/profile-*.txt.
# 40 publishers send the broker SENDs: at 3000/s that is 75/s each, under the server's
# per-connection broker limit (DISCODEIT_STOMP_BROKER_RATE, 200/s), so it stays at its default.
# The binaries must be release builds; nothing is built here (BENCH_NO_BUILD=1). PostgreSQL as
# perf/bench_lib.sh finds it (scripts/lib.sh pg_start: a shell that sourced the shared
# services' environment reuses that cluster).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BEFORE="${BEFORE:-/var/tmp/bin-before}"
AFTER="${AFTER:-/var/tmp/bin-after}"
STEPS="${AB_STEPS:-stomp10k sse10k stomp1k metrics}"
DURATION="${DURATION:-5}"
STOMP10K_RATES="${STOMP10K_RATES:-10,40,80,120,160,200}"
SSE10K_RATES="${SSE10K_RATES:-10,40,80,120,160}"
STOMP1K_RATES="${STOMP1K_RATES:-1000,1500,2000,3000}"
STOMP1K_BEFORE_RATES="${STOMP1K_BEFORE_RATES:-1000}"
SATURATION_RATE="${SATURATION_RATE:-160}"
PROFILE_CASES="${PROFILE_CASES:-stomp:10000:$SATURATION_RATE}"
OUT="${AB_OUT:-$(mktemp -d /tmp/discodeit-realtime-ab.XXXXXX)}"
mkdir -p "$OUT"
export BENCH_NO_BUILD=1 DURATION

# run NAME BINARY SCRIPT ENV...: one benchmark script run, its output in $OUT/NAME.
run() {
    local name=$1 bin=$2 script=$3
    shift 3
    echo "== $name ($(basename "$bin")) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" |
        tee -a "$OUT/summary.md"
    # Kernel TCP memory (both ends: the generator runs here too) once a second, for sizing.
    (while sleep 1; do echo "$(date -u +%T) $(grep '^TCP:' /proc/net/sockstat)"; done) \
        >"$OUT/$name.sockstat" &
    local sampler=$! rc=0
    env "$@" SERVER_BIN="$bin" BENCH_OUT="$OUT/$name" "$script" >"$OUT/$name.out" 2>&1 || rc=$?
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    if [[ $rc != 0 ]]; then
        echo "   failed ($rc): see $OUT/$name.out" | tee -a "$OUT/summary.md"
        return 0
    fi
    grep -E '^\|' "$OUT/$name.out" >>"$OUT/summary.md" || true
    grep -E 'whole run|server RSS' "$OUT/$name.out" >>"$OUT/summary.md" || true
}

# profile NAME KIND CONNS RATE: one run of the after server with `perf record -g` attached
# while the rate is published (from the generator's idle-RSS line on: publishers connect, then
# publishing starts).
profile() {
    local name=$1 kind=$2 conns=$3 rate=$4 script pid
    if [[ $kind == sse ]]; then
        script=perf/sse_bench.sh
    else
        script=perf/stomp_bench.sh
    fi
    echo "== $name: perf record, $kind $conns at $rate/s, load $(cut -d' ' -f1-3 /proc/loadavg)" |
        tee -a "$OUT/summary.md"
    env SERVER_BIN="$AFTER" BENCH_OUT="$OUT/$name" STOMP_MODES=broker \
        STOMP_RUNS="$conns:$rate" SSE_RUNS="$conns:$rate" DURATION=8 "$script" \
        >"$OUT/$name.out" 2>&1 &
    local bench=$!
    until grep -q 'server RSS' "$OUT/$name.out" 2>/dev/null; do
        kill -0 "$bench" 2>/dev/null || break
        sleep 0.5
    done
    pid=$(sed -n 's/.*(server pid \([0-9]*\)).*/\1/p' "$OUT/$name.out" | head -n 1)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        perf record -g -p "$pid" -o "$OUT/$name.perf.data" -- sleep 8 >/dev/null 2>&1 || true
    fi
    wait "$bench" || true
    grep -E '^\|' "$OUT/$name.out" >>"$OUT/summary.md" || true
    if [[ -f $OUT/$name.perf.data ]]; then
        perf report -i "$OUT/$name.perf.data" --no-children --percent-limit 1 --stdio \
            --sort symbol 2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 40 >"$OUT/$name.txt" || true
        perf report -i "$OUT/$name.perf.data" --no-children --stdio --sort dso \
            2>/dev/null | grep -E '^ +[0-9.]+%' | head -n 12 >>"$OUT/$name.txt" || true
    fi
}

# ab NAME SCRIPT ENV...: the step once per binary, after then before.
ab() {
    local name=$1
    shift
    run "$name-after" "$AFTER" "$@"
    run "$name-before" "$BEFORE" "$@"
}

for step in $STEPS; do
    case $step in
    stomp10k)
        ab stomp10k perf/stomp_bench.sh STOMP_MODES=broker \
            STOMP_RUNS="10000:$STOMP10K_RATES" LOADGEN_ARGS="--max-p99-ms 1000"
        ;;
    sse10k)
        ab sse10k perf/sse_bench.sh SSE_RUNS="10000:$SSE10K_RATES" \
            LOADGEN_ARGS="--max-p99-ms 1000"
        ;;
    stomp1k)
        run stomp1k-after "$AFTER" perf/stomp_bench.sh STOMP_MODES=broker \
            STOMP_RUNS="1000:$STOMP1K_RATES"
        run stomp1k-before "$BEFORE" perf/stomp_bench.sh STOMP_MODES=broker \
            STOMP_RUNS="1000:$STOMP1K_BEFORE_RATES"
        ;;
    metrics)
        for i in 1 2; do
            run "metrics-on-$i" "$AFTER" perf/stomp_bench.sh STOMP_MODES=broker \
                STOMP_RUNS="10000:$SATURATION_RATE"
            run "metrics-off-$i" "$AFTER" perf/stomp_bench.sh STOMP_MODES=broker \
                STOMP_RUNS="10000:$SATURATION_RATE" BENCH_SERVER_ENV="DISCODEIT_METRICS=off"
        done
        ;;
    sockjs10k)
        ab sockjs10k perf/stomp_bench.sh STOMP_MODES=broker STOMP_TRANSPORT=sockjs \
            STOMP_RUNS="10000:$STOMP10K_RATES" LOADGEN_ARGS="--max-p99-ms 1000"
        ;;
    profile)
        for case in $PROFILE_CASES; do
            IFS=: read -r kind conns rate <<<"$case"
            profile "profile-$kind-$conns-$rate" "$kind" "$conns" "$rate"
        done
        ;;
    *)
        echo "unknown step $step" >&2
        exit 2
        ;;
    esac
done
echo "all output in $OUT (summary: $OUT/summary.md)"
