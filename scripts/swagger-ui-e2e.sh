#!/usr/bin/env bash
# Runs swagger-ui/e2e (Playwright: playwright-core + Debian's chromium) against a real
# discodeit server that serves swagger-ui/dist at /swagger-ui, on its own database.
# Expects PostgreSQL from scripts/lib.sh (pg_start), a built swagger-ui/dist
# (npm --prefix swagger-ui run build) and the server binary at $DISCODEIT_BIN.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
: "${DISCODEIT_PG_ADMIN_URL:?start PostgreSQL first (scripts/lib.sh pg_start)}"
bin="${DISCODEIT_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/discodeit}"
[[ -f swagger-ui/dist/index.html ]] || {
    echo "swagger-ui/dist is missing: npm --prefix swagger-ui run build" >&2
    exit 1
}
work=$(mktemp -d /tmp/discodeit-swagger-e2e.XXXXXX)
port=$(free_port)
db="swaggere2e_$(date +%s)_$$"
psql "$DISCODEIT_PG_ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null
server_pid=""
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    psql "$DISCODEIT_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

env -u REDIS_URL -u KAFKA_BOOTSTRAP_SERVERS \
    DATABASE_URL="${DISCODEIT_PG_ADMIN_URL%/*}/$db" \
    DISCODEIT_ADDR="127.0.0.1:$port" \
    DISCODEIT_STORAGE_DIR="$work/storage" \
    DISCODEIT_SWAGGER_UI_DIR="$PWD/swagger-ui/dist" \
    SECURITY_JWT_SECRET="$(gen_secret)" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$bin" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/actuator/health" >/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
done
curl -sf "http://127.0.0.1:$port/actuator/health" >/dev/null || {
    cat "$work/server.log" >&2
    echo "swagger-ui-e2e: the server did not start" >&2
    exit 1
}
export DISCODEIT_E2E_URL="http://127.0.0.1:$port"
export DISCODEIT_E2E_CHROMIUM="${DISCODEIT_CHROMIUM:-/usr/bin/chromium}"
npm --prefix swagger-ui run test:e2e
