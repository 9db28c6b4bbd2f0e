# shellcheck shell=bash
# Shared steps of perf/sse_bench.sh and perf/stomp_bench.sh: build, PostgreSQL, a fresh
# database, and one release server per run (a fresh process gives a clean RSS baseline).
#
#   source perf/bench_lib.sh
#   bench_setup NAME          # builds, starts PostgreSQL, creates database bench_NAME_<pid>
#   bench_server_start        # sets BENCH_URL and BENCH_PID
#   bench_server_stop
#
# Knobs: BENCH_OUT (log directory), BENCH_KEEPALIVE (DISCODEIT_SSE_KEEPALIVE_SECONDS, 15),
# BENCH_NO_BUILD=1 (use the binaries as built), SERVER_BIN (another server binary),
# BENCH_SERVER_ENV ("NAME=value ..." added to the server's environment).

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

BENCH_ADMIN=admin
BENCH_ADMIN_PASSWORD='bench-admin-pw-9!'
LOADGEN="$DISCODEIT_ROOT/target/perf-loadgen/release/loadgen"
SERVER_BIN="${SERVER_BIN:-${CARGO_TARGET_DIR:-$DISCODEIT_ROOT/target}/release/discodeit}"

_bench_psql() {
    "$(_pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$DISCODEIT_PG_PORT" \
        -U postgres -d postgres "$@"
}

bench_setup() {
    local name=$1
    ensure_rust_deps
    if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
        (cd "$DISCODEIT_ROOT" && cargo build --release --bin discodeit)
        # The generator's own target dir (perf/loadgen/.cargo/config.toml), whatever the shell's.
        (cd "$DISCODEIT_ROOT/perf/loadgen" && env -u CARGO_TARGET_DIR cargo build --release)
    fi
    pg_start
    # Every connection is a file: the server and each loadgen process need up to 20,000.
    ulimit -n "$(ulimit -Hn)"
    BENCH_DB="bench_${name}_$$"
    _bench_psql -c "CREATE DATABASE $BENCH_DB"
    BENCH_DB_URL="postgres://postgres@127.0.0.1:$DISCODEIT_PG_PORT/$BENCH_DB"
    BENCH_OUT="${BENCH_OUT:-$(mktemp -d "/tmp/discodeit-$name-bench.XXXXXX")}"
    mkdir -p "$BENCH_OUT"
    BENCH_SECRET=$(gen_secret)
    trap bench_cleanup EXIT
    _log "open files per process: $(ulimit -n); logs in $BENCH_OUT"
}

bench_server_start() {
    local port
    port=$(free_port)
    local storage="$BENCH_OUT/storage"
    mkdir -p "$storage"
    # A clean environment: a shell that sourced /work/env.sh or scripts/lib.sh has
    # KAFKA_BOOTSTRAP_SERVERS and REDIS_URL set, which would turn this into a multi-instance
    # server on a shared broker.
    env -i PATH="$PATH" DATABASE_URL="$BENCH_DB_URL" \
        DATABASE_POOL_SIZE=16 \
        ${BENCH_SERVER_ENV:-} \
        SECURITY_JWT_SECRET="$BENCH_SECRET" \
        SECURITY_JWT_ACCESS_TOKEN_VALIDITY_SECONDS=7200 \
        DISCODEIT_ADDR="127.0.0.1:$port" \
        DISCODEIT_ADMIN_ADDR="127.0.0.1:0" \
        DISCODEIT_STORAGE_DIR="$storage" \
        DISCODEIT_ADMIN_USERNAME="$BENCH_ADMIN" \
        DISCODEIT_ADMIN_EMAIL=admin@bench.local \
        DISCODEIT_ADMIN_PASSWORD="$BENCH_ADMIN_PASSWORD" \
        DISCODEIT_AUTH_IP_BURST=0 DISCODEIT_AUTH_USERNAME_BURST=0 \
        DISCODEIT_SSE_KEEPALIVE_SECONDS="${BENCH_KEEPALIVE:-15}" \
        RUST_LOG="${BENCH_RUST_LOG:-warn}" \
        "$SERVER_BIN" >>"$BENCH_OUT/server.log" 2>&1 &
    BENCH_PID=$!
    BENCH_URL="http://127.0.0.1:$port"
    if ! wait_port 127.0.0.1 "$port" 30; then
        tail -n 20 "$BENCH_OUT/server.log" >&2
        return 1
    fi
}

bench_server_stop() {
    if [[ -n ${BENCH_PID:-} ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    BENCH_PID=
}

bench_cleanup() {
    local rc=$?
    bench_server_stop
    if [[ -n ${BENCH_DB:-} ]]; then
        _bench_psql -c "DROP DATABASE IF EXISTS $BENCH_DB" >/dev/null 2>&1 || true
    fi
    cleanup_services
    return $rc
}

# bench_note: what else the machine was doing (2 cores shared with other engineers' builds).
bench_note() {
    printf 'host: %s cores, %s; loadavg before: %s\n' "$(nproc)" \
        "$(free -g | awk '/Mem:/ {print $2 " GiB RAM"}')" "$(cut -d' ' -f1-3 /proc/loadavg)"
}
