#!/usr/bin/env bash
# THE test command: ./scripts/test.sh
#
# Starts private PostgreSQL (fsync off), Redis and a Kafka-protocol broker
# (tansu), then runs cargo build / fmt / clippy / test, a short run of every fuzz
# target (scripts/fuzz.sh), the contract tests of
# openapi.yaml (scripts/contract-test.sh), the Node end-to-end suites and the
# Playwright tests of the web client and of Swagger UI. Services it started are
# stopped on exit.
# Exits non-zero when any step fails.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

T0=$SECONDS
RESULTS=()
FAILED=0

record() { RESULTS+=("$(printf '  %-5s %-44s %s' "$1" "$2" "$3")"); }

# step NAME CMD...: runs CMD, records ok/FAIL with its duration.
step() {
    local name=$1 t=$SECONDS rc
    shift
    printf '\n==> %s\n' "$name"
    "$@"
    rc=$?
    if ((rc == 0)); then
        record ok "$name" "($((SECONDS - t))s)"
    else
        record FAIL "$name" "($((SECONDS - t))s, exit $rc)"
        FAILED=$((FAILED + 1))
    fi
    return $rc
}

skip() { record skip "$1" "${2:-}"; }

finish() {
    local rc=$?
    cleanup_services
    ((FAILED > 0 || rc == 0)) || FAILED=$((FAILED + 1))
    echo
    echo "==================== discodeit test summary ===================="
    local r
    for r in "${RESULTS[@]}"; do echo "$r"; done
    echo "================================================================"
    if ((FAILED == 0)); then
        echo "RESULT: OK (all steps succeeded in $((SECONDS - T0))s)"
    else
        echo "RESULT: FAILED ($FAILED step(s) failed, $((SECONDS - T0))s)"
        exit 1
    fi
}
trap finish EXIT
trap 'exit 130' INT TERM

setup_services() {
    ensure_rust_deps &&
        # nginx + envsubst for the multi-instance harness, docker-compose to validate
        # compose.yaml; installed once here rather than by parallel tests.
        ensure_debs nginx-light gettext-base docker-compose &&
        DISCODEIT_PG_FAST=1 pg_start &&
        redis_start &&
        tansu_start
}

if ! step "services (postgres, redis, tansu)" setup_services; then
    exit 1
fi
export DATABASE_URL DISCODEIT_PG_ADMIN_URL REDIS_URL KAFKA_BOOTSTRAP_SERVERS
export SECURITY_JWT_SECRET="${SECURITY_JWT_SECRET:-$(gen_secret)}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
echo "DATABASE_URL=$DATABASE_URL"
echo "DISCODEIT_PG_ADMIN_URL=$DISCODEIT_PG_ADMIN_URL"
echo "REDIS_URL=$REDIS_URL"
echo "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
echo "cargo target dir: $TARGET_DIR"

if step "cargo build --all-targets" cargo build --all-targets; then
    # Debug server binary, for end-to-end suites that spawn the server.
    export DISCODEIT_BIN="$TARGET_DIR/debug/discodeit"
    step "cargo fmt --check" cargo fmt --all -- --check
    step "cargo clippy -D warnings" cargo clippy --all-targets -- -D warnings
    # --no-fail-fast: one failing binary must not hide the others.
    step "cargo test" cargo test --no-fail-fast --all-targets -- --test-threads=4
    # A short run of every fuzz target from its seeds (fuzz/, docs/fuzzing.md): regressions in
    # the parsers and the STOMP session show up here.
    step "fuzz targets (5 s each)" ./scripts/fuzz.sh --seconds 5
    # openapi.yaml validated, then schemathesis against a real server (scripts/contract).
    step "contract tests (openapi.yaml, schemathesis)" ./scripts/contract-test.sh
else
    skip "cargo fmt/clippy/test" "(build failed)"
    skip "contract tests" "(build failed)"
fi

if [[ -f tests/e2e/package.json ]]; then
    step "npm ci (tests/e2e)" ensure_node_deps tests/e2e &&
        step "npm test (tests/e2e)" npm --prefix tests/e2e test
else
    skip "tests/e2e" "(no tests/e2e/package.json)"
fi

if [[ -f web/package.json ]]; then
    if step "npm ci (web)" ensure_node_deps web &&
        step "web build" npm --prefix web run build; then
        export DISCODEIT_WEB_DIR="$PWD/web/dist"
        has_e2e_script=$(node -e 'const p=require("./web/package.json");process.stdout.write(p.scripts&&p.scripts["test:e2e"]?"1":"")')
        if [[ -n $has_e2e_script ]]; then
            step "chromium" ensure_chromium &&
                step "web bundle budget" npm --prefix web run test:budget &&
                step "web e2e (Playwright, real server)" ./scripts/web-e2e.sh
        elif [[ -d web/e2e ]]; then
            skip "web e2e" "(web/e2e exists but web/package.json has no test:e2e script)"
        else
            skip "web e2e" "(none)"
        fi
    fi
else
    skip "web" "(no web/package.json)"
fi

if [[ -n ${DISCODEIT_BIN:-} ]]; then
    step "npm ci (swagger-ui)" ensure_node_deps swagger-ui &&
        step "swagger-ui build" npm --prefix swagger-ui run build &&
        step "chromium (swagger-ui)" ensure_chromium &&
        step "swagger-ui e2e (Playwright, real server)" ./scripts/swagger-ui-e2e.sh
else
    skip "swagger-ui e2e" "(build failed)"
fi

exit 0
