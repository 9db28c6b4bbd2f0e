#!/usr/bin/env bash
# REST benchmark: throughput and latency of authenticated REST calls, measured with wrk.
#
#     perf/rest_bench.sh                      # 10 s per endpoint, 2 threads, 64 connections
#     DURATION=30s CONNECTIONS=128 perf/rest_bench.sh
#
# Builds the release binary, starts the private PostgreSQL (scripts/lib.sh pg_start), creates a
# fresh database, starts the server on a free port (admin bootstrap, in-memory JWT registry,
# in-process event bus), logs in as the admin the way the front end does (CSRF cookie, JSON
# login), creates a public channel, then runs wrk against:
#   1. GET  /api/channels?userId=<admin>          Bearer token
#   2. POST /api/messages  multipart, text only   Bearer + Cookie XSRF-TOKEN + X-XSRF-TOKEN
#   3. POST /api/messages  multipart + one 4 KiB attachment (row WAITING, file written after
#                          commit, then SUCCESS)
# and prints requests/s and latency percentiles (p50/p90/p99/p99.9) per endpoint, plus any
# non-2xx responses or socket errors. The server and its database are removed at the end;
# PostgreSQL keeps running if it was already running.
#
# Knobs: DURATION (10s), THREADS (2), CONNECTIONS (64), ATTACHMENT_BYTES (4096),
#        DATABASE_POOL_SIZE (32), KEEP_DB=1 (do not drop the database), SERVER_BIN (run this
#        server binary instead of building one).
# PostgreSQL is the one of scripts/lib.sh for $DISCODEIT_DATA; for fsync on, give it a private
# cluster: DISCODEIT_DATA=$(mktemp -d) DISCODEIT_PG_PORT=<free port> perf/rest_bench.sh
# (the summary prints the fsync and synchronous_commit it ran with).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ATTACHMENT_BYTES=${ATTACHMENT_BYTES:-4096}
POOL=${DATABASE_POOL_SIZE:-32}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

command -v wrk >/dev/null 2>&1 || ensure_debs wrk
command -v curl >/dev/null 2>&1 || ensure_debs curl
ensure_rust_deps

if [[ -n ${SERVER_BIN:-} ]]; then
    BIN=$SERVER_BIN
else
    echo "==> cargo build --release --bin discodeit"
    cargo build --release --bin discodeit
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/discodeit"
fi

pg_start
PSQL=("$(_pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DISCODEIT_PG_PORT" -U postgres -d postgres)
DB="rest_bench_$$_$(date +%s)"
"${PSQL[@]}" -c "CREATE DATABASE $DB"

WORK=$(mktemp -d)
SERVER_PID=""
finish() {
    local rc=$?
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ ${KEEP_DB:-0} != 1 ]]; then
        "${PSQL[@]}" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    cleanup_services
    return $rc
}
trap finish EXIT

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
env -i PATH="$PATH" \
    DATABASE_URL="postgres://postgres@127.0.0.1:$DISCODEIT_PG_PORT/$DB" \
    DATABASE_POOL_SIZE="$POOL" \
    SECURITY_JWT_SECRET="$(gen_secret)" \
    SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS=3600 \
    DISCODEIT_ADDR="127.0.0.1:$PORT" \
    DISCODEIT_ADMIN_ADDR="127.0.0.1:0" \
    DISCODEIT_STORAGE_DIR="$WORK/storage" \
    DISCODEIT_INSTANCE_ID=rest-bench \
    DISCODEIT_ADMIN_USERNAME=admin \
    DISCODEIT_ADMIN_EMAIL=admin@bench.local \
    DISCODEIT_ADMIN_PASSWORD='bench-admin-pw-9!' \
    DISCODEIT_AUTH_IP_BURST=0 DISCODEIT_AUTH_USERNAME_BURST=0 \
    RUST_LOG=warn \
    "$BIN" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for ((i = 0; i < 300; i++)); do
    if curl -fsS "$BASE/actuator/health" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/server.log" >&2
        echo "server exited" >&2
        exit 1
    fi
    sleep 0.1
done
curl -fsS "$BASE/actuator/health" >/dev/null

# Log in like the front end: CSRF cookie, then JSON login (the body is the token as a JSON string).
JAR="$WORK/cookies"
json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
XSRF=$(curl -fsS -c "$JAR" "$BASE/api/auth/csrf-token" | json_field token)
TOKEN=$(curl -fsS -b "$JAR" -c "$JAR" -H "X-XSRF-TOKEN: $XSRF" -H 'Content-Type: application/json' \
    -d '{"username":"admin","password":"bench-admin-pw-9!"}' "$BASE/api/auth/login" | tr -d '"')
USER_ID=$(python3 -c 'import base64,json,sys; p=sys.argv[1].split(".")[1]; p+="="*(-len(p)%4); print(json.loads(base64.urlsafe_b64decode(p))["userDto"]["id"])' "$TOKEN")
CHANNEL_ID=$(curl -fsS -b "$JAR" -H "Authorization: Bearer $TOKEN" -H "X-XSRF-TOKEN: $XSRF" \
    -H 'Content-Type: application/json' -d '{"name":"bench","description":"wrk"}' \
    "$BASE/api/channels/public" | json_field id)
# A few more channels so the list is not trivially small (5 public channels in all).
for n in 1 2 3 4; do
    curl -fsS -b "$JAR" -H "Authorization: Bearer $TOKEN" -H "X-XSRF-TOKEN: $XSRF" \
        -H 'Content-Type: application/json' -d "{\"name\":\"bench-$n\"}" \
        "$BASE/api/channels/public" >/dev/null
done

# Shared Lua: headers, an optional multipart body, and a one-line summary at the end.
cat >"$WORK/bench.lua" <<'LUA'
local token = os.getenv("BENCH_TOKEN")
local xsrf = os.getenv("BENCH_XSRF")
local mode = os.getenv("BENCH_MODE")
local channel = os.getenv("BENCH_CHANNEL")
local author = os.getenv("BENCH_USER")
local attach = tonumber(os.getenv("BENCH_ATTACH") or "0")

wrk.headers["Authorization"] = "Bearer " .. token
if mode == "post" then
  local b = "----wrkBoundary7MA4YWxkTrZu0gW"
  local json = string.format('{"content":"hello from wrk","channelId":"%s","authorId":"%s"}', channel, author)
  local parts = {
    "--" .. b,
    'Content-Disposition: form-data; name="messageCreateRequest"; filename="blob"',
    "Content-Type: application/json",
    "",
    json,
  }
  if attach > 0 then
    table.insert(parts, "--" .. b)
    table.insert(parts, 'Content-Disposition: form-data; name="attachments"; filename="bench.bin"')
    table.insert(parts, "Content-Type: application/octet-stream")
    table.insert(parts, "")
    table.insert(parts, string.rep("x", attach))
  end
  table.insert(parts, "--" .. b .. "--")
  table.insert(parts, "")
  wrk.method = "POST"
  wrk.body = table.concat(parts, "\r\n")
  wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. b
  wrk.headers["Cookie"] = "XSRF-TOKEN=" .. xsrf
  wrk.headers["X-XSRF-TOKEN"] = xsrf
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.1f rps=%.0f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, s, summary.requests / s,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
LUA

export BENCH_TOKEN="$TOKEN" BENCH_XSRF="$XSRF" BENCH_CHANNEL="$CHANNEL_ID" BENCH_USER="$USER_ID"

# Sanity check of both requests before measuring (a 4xx would make the numbers meaningless).
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "$BASE/api/channels?userId=$USER_ID")
[[ $code == 200 ]] || { echo "GET /api/channels answered $code" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' -b "XSRF-TOKEN=$XSRF" -H "X-XSRF-TOKEN: $XSRF" \
    -H "Authorization: Bearer $TOKEN" \
    -F "messageCreateRequest={\"content\":\"check\",\"channelId\":\"$CHANNEL_ID\",\"authorId\":\"$USER_ID\"};type=application/json;filename=blob" \
    "$BASE/api/messages")
[[ $code == 201 ]] || { echo "POST /api/messages answered $code" >&2; exit 1; }

RESULTS=()
run() {
    local name=$1 url=$2 out
    shift 2
    echo
    echo "==> $name  (wrk -t$THREADS -c$CONNECTIONS -d$DURATION)"
    out=$(env "$@" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$WORK/bench.lua" "$url")
    echo "$out"
    RESULTS+=("$(printf '%-44s %s' "$name" "$(grep '^RESULT' <<<"$out" | sed 's/^RESULT //')")")
}

run "GET /api/channels?userId= (5 channels)" "$BASE/api/channels?userId=$USER_ID" BENCH_MODE=get
run "POST /api/messages (multipart, text)" "$BASE/api/messages" BENCH_MODE=post BENCH_ATTACH=0
run "POST /api/messages (multipart, $ATTACHMENT_BYTES B file)" "$BASE/api/messages" BENCH_MODE=post BENCH_ATTACH="$ATTACHMENT_BYTES"

messages=$("${PSQL[@]}" -d "$DB" -tAc "SELECT count(*) FROM messages")
files=$(find "$WORK/storage" -type f ! -name '.*' | wc -l)
echo
echo "==================== REST benchmark summary ===================="
echo "machine: $(nproc) cores, $(uname -sr); load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $BIN, DATABASE_POOL_SIZE=$POOL, in-memory registry, in-process bus"
echo "postgres: port $DISCODEIT_PG_PORT, fsync=$("${PSQL[@]}" -tAc 'SHOW fsync') synchronous_commit=$("${PSQL[@]}" -tAc 'SHOW synchronous_commit')"
for r in "${RESULTS[@]}"; do echo "$r"; done
echo "messages stored: $messages, attachment files written: $files"
echo "================================================================"
