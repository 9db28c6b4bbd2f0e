#!/usr/bin/env bash
# One STOMP broker-mode overload run that also watches the server from inside: while the
# generator publishes, samples /actuator/prometheus (discodeit_fanout_waits_total, connection
# queue bytes) once a second, and at the end prints the server's own publish→write histogram
# beside the generator's end-to-end figures (perf/RESULTS.md, "Fan-out backlog gate").
#
#   perf/overload_probe.sh RATE [NAME=value ...]     # server env, e.g. DISCODEIT_FANOUT_MAX_LAG_MS=2000
#   CONNS=10000 DURATION=10 SERVER_BIN=/var/tmp/bin-before BENCH_NO_BUILD=1 perf/overload_probe.sh 400
#
# CONNS subscribers (default 1000, 100 per user), 40 publishers, 200-byte bodies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rate=${1:?usage: perf/overload_probe.sh RATE [NAME=value ...]}
shift
export BENCH_SERVER_ENV="$*"
# shellcheck source=perf/bench_lib.sh
source perf/bench_lib.sh
bench_setup overload >/dev/null
bench_server_start
# The admin listener (health, metrics) is on a port of its own; the server's only other one.
admin=$(ss -ltnp | grep "pid=$BENCH_PID," | awk '{print $4}' | grep -v ":${BENCH_URL##*:}$" | head -n 1)
metrics() { curl -s "http://$admin/actuator/prometheus"; }

"$LOADGEN" stomp --mode broker --url "$BENCH_URL" --server-pid "$BENCH_PID" \
    --conns "${CONNS:-1000}" --per-user 100 --publishers 40 --rate "$rate" \
    --duration "${DURATION:-5}" --sources 8 --admin-user "$BENCH_ADMIN" \
    --admin-password "$BENCH_ADMIN_PASSWORD" >"$BENCH_OUT/run.log" 2>"$BENCH_OUT/run.err" &
gen=$!
while kill -0 "$gen" 2>/dev/null; do
    metrics | grep -E '^discodeit_fanout_waits_total|^discodeit_connection_queue_bytes\{quantile="(0.5|1)"' |
        tr '\n' ' '
    echo
    sleep 1
done
wait "$gen" || true
# Share of deliveries written within each bucket of the publish→write histogram.
metrics | grep -E '^discodeit_publish_to_write_seconds_bucket\{transport="websocket"' | python3 -c '
import sys
rows = [(l.split("le=\"")[1].split("\"")[0], float(l.split()[-1])) for l in sys.stdin]
total = rows[-1][1] if rows else 0
print("server publish->write:", " ".join(f"le{le}:{c / total * 100:.1f}%" for le, c in rows if total))'
grep -a RESULT "$BENCH_OUT/run.log" | python3 -c '
import sys, json
r = json.loads(sys.stdin.read().split("RESULT ", 1)[1])
keys = ["achieved_rate", "published", "publish_errors", "lost", "delivered_per_s",
        "p50_ms", "p99_ms", "max_ms", "rss_end_kib", "closed", "told"]
print({k: r[k] for k in keys})'
# What the generator was told (ERROR frames, close reasons), most frequent first.
sort "$BENCH_OUT/run.err" | uniq -c | sort -rn | head -n 5
bench_server_stop
