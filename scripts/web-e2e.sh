#!/usr/bin/env bash
# Runs the web client's Playwright tests (web/e2e) in headless Chromium against a real
# discodeit server that serves web/dist, on its own database. The tests may restart the
# server through DISCODEIT_E2E_RESTART_CMD. Expects PostgreSQL from scripts/lib.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh
: "${DISCODEIT_PG_ADMIN_URL:?start PostgreSQL first (scripts/lib.sh pg_start)}"
bin="${DISCODEIT_BIN:-$PWD/target/debug/discodeit}"
work=$(mktemp -d /tmp/discodeit-web-e2e.XXXXXX)
port=$(free_port)
db="webe2e_$(date +%s)_$$"
psql "$DISCODEIT_PG_ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null

cat >"$work/env" <<ENV
export DATABASE_URL='${DISCODEIT_PG_ADMIN_URL%/*}/$db'
export DISCODEIT_ADDR='127.0.0.1:$port'
export DISCODEIT_ADMIN_ADDR='127.0.0.1:0'
export DISCODEIT_WEB_DIR='$PWD/web/dist'
export DISCODEIT_STORAGE_DIR='$work/storage'
export DISCODEIT_ADMIN_USERNAME='admin'
export DISCODEIT_ADMIN_EMAIL='admin@e2e.test'
export DISCODEIT_ADMIN_PASSWORD='e2e-admin-pw-9!'
# Many logins and sign-ups from 127.0.0.1: the login throttle is tested elsewhere.
export DISCODEIT_AUTH_IP_BURST=0 DISCODEIT_AUTH_USERNAME_BURST=0
export SECURITY_JWT_SECRET='$(gen_secret)'
export RUST_LOG='${RUST_LOG:-warn}'
ENV

# start/stop/restart helpers the tests call through DISCODEIT_E2E_RESTART_CMD.
cat >"$work/server.sh" <<SH
#!/usr/bin/env bash
source '$work/env'
stop() { [[ -f '$work/pid' ]] && kill "\$(cat '$work/pid')" 2>/dev/null; for _ in \$(seq 100); do kill -0 "\$(cat '$work/pid')" 2>/dev/null || break; sleep 0.05; done; }
start() {
  # Single-instance mode, as run.sh serves it: a shared broker or Redis (the test command
  # exports them for the scale-out tests) would mix this server's events with others'.
  nohup env -u REDIS_URL -u KAFKA_BOOTSTRAP_SERVERS '$bin' >>'$work/server.log' 2>&1 &
  echo \$! >'$work/pid'
  for _ in \$(seq 300); do curl -sf "http://127.0.0.1:$port/actuator/health" >/dev/null && return 0; sleep 0.05; done
  echo "server did not start" >&2; return 1
}
case "\$1" in start) start ;; stop) stop ;; restart) stop; start ;; esac
SH
chmod +x "$work/server.sh"
trap '"$work/server.sh" stop; psql "$DISCODEIT_PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
"$work/server.sh" start

export DISCODEIT_E2E_URL="http://127.0.0.1:$port"
export DISCODEIT_E2E_ADMIN_USERNAME=admin DISCODEIT_E2E_ADMIN_PASSWORD='e2e-admin-pw-9!'
export DISCODEIT_E2E_RESTART_CMD="$work/server.sh restart"
npm --prefix web run "${1:-test:e2e}"
