#!/usr/bin/env bash
# Runs the discodeit server locally: ./scripts/run.sh [extra server args]
#
# Starts a private PostgreSQL (scripts/lib.sh, state in $DISCODEIT_DATA, default
# .data/), builds the web client when web/package.json exists and Swagger UI,
# then runs the release build. PostgreSQL keeps running after the server stops (fast restarts);
# stop it with: bash -c 'source scripts/lib.sh && pg_stop'
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_rust_deps
pg_start

# JWT secret: persisted so that restarts keep sessions valid.
if [[ -z "${SECURITY_JWT_SECRET:-}" ]]; then
    secret_file="$DISCODEIT_DATA/jwt-secret"
    if [[ ! -s $secret_file ]]; then
        (umask 077 && gen_secret >"$secret_file")
    fi
    SECURITY_JWT_SECRET="$(tr -d '\n' <"$secret_file")"
fi
export SECURITY_JWT_SECRET

export DISCODEIT_ADMIN_USERNAME="${DISCODEIT_ADMIN_USERNAME:-admin}"
export DISCODEIT_ADMIN_EMAIL="${DISCODEIT_ADMIN_EMAIL:-admin@discodeit.local}"
# Admin password: generated once and persisted like the secret (the server refuses published
# defaults). An admin that already exists keeps the password it was created with.
if [[ -z "${DISCODEIT_ADMIN_PASSWORD:-}" ]]; then
    password_file="$DISCODEIT_DATA/admin-password"
    if [[ ! -s $password_file ]]; then
        (umask 077 && printf '%s!\n' "$(gen_secret | cut -c1-16)" >"$password_file")
    fi
    DISCODEIT_ADMIN_PASSWORD="$(tr -d '\n' <"$password_file")"
fi
export DISCODEIT_ADMIN_PASSWORD

if [[ -f web/package.json ]]; then
    ensure_node_deps web
    npm --prefix web run build
    export DISCODEIT_WEB_DIR="${DISCODEIT_WEB_DIR:-$PWD/web/dist}"
fi

# Swagger UI at /swagger-ui (the document itself is compiled into the server).
ensure_node_deps swagger-ui
npm --prefix swagger-ui run build
export DISCODEIT_SWAGGER_UI_DIR="${DISCODEIT_SWAGGER_UI_DIR:-$PWD/swagger-ui/dist}"

export DISCODEIT_ADDR="${DISCODEIT_ADDR:-0.0.0.0:8080}"
export DISCODEIT_STORAGE_DIR="${DISCODEIT_STORAGE_DIR:-$DISCODEIT_DATA/storage}"
mkdir -p "$DISCODEIT_STORAGE_DIR"

port="${DISCODEIT_ADDR##*:}"
echo
echo "  Database:  $DATABASE_URL"
echo "  Storage:   $DISCODEIT_STORAGE_DIR"
echo "  Admin:     $DISCODEIT_ADMIN_USERNAME / $DISCODEIT_ADMIN_PASSWORD ($DISCODEIT_ADMIN_EMAIL)"
echo
echo "Discodeit on http://localhost:$port (API reference: http://localhost:$port/swagger-ui)"
echo

exec cargo run --release --bin discodeit -- "$@"
