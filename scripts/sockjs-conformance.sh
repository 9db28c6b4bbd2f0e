#!/usr/bin/env bash
# Runs the official SockJS protocol suite against examples/sockjs-test-server:
#
#     scripts/sockjs-conformance.sh SUITE_DIR
#
# SUITE_DIR holds sockjs-protocol.py and utils.py from the sockjs/sockjs-protocol repository
# (README, "Conformance and benchmarks", names the commit). The suite is Python 2.7 code and is
# not part of scripts/test.sh (CI may have no Python 2.7); tests/stomp_sockjs_conformance.rs
# checks the same behaviours in CI.
#
# It builds and starts the example server on a free port, installs the suite's packages once
# into $DISCODEIT_CACHE_DIR/sockjs-protocol-py27 (pinned to versions that still support
# Python 2.7; reused while the pins are unchanged), runs the suite with SOCKJS_URL, prints the
# unittest output and a "N passed, N failed" line, and exits non-zero when a test fails.
#
# Knobs: SOCKJS_PYTHON   a Python 2.7 interpreter (default: python2.7 on PATH, else pyenv's)
#        SOCKJS_TESTS    test names to run instead of all (e.g. "Websocket.test_haproxy")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

suite="${1:-}"
if [[ -z $suite || ! -f $suite/sockjs-protocol.py || ! -f $suite/utils.py ]]; then
    echo "usage: $0 SUITE_DIR   (a directory with sockjs-protocol.py and utils.py)" >&2
    exit 2
fi
suite="$(cd "$suite" && pwd -P)"

# --- Python 2.7 and the suite's packages --------------------------------------------------
is_py27() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' >/dev/null 2>&1; }
python=""
if [[ -n ${SOCKJS_PYTHON:-} ]]; then
    candidates=("$SOCKJS_PYTHON")
else
    # A pyenv shim for python2.7 may be on PATH and still refuse to run: try each.
    candidates=("$(command -v python2.7 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python)
fi
for p in "${candidates[@]}"; do
    if [[ -n $p ]] && is_py27 "$p"; then
        python="$p"
        break
    fi
done
if [[ -z $python ]]; then
    echo "needs Python 2.7: set SOCKJS_PYTHON (e.g. pyenv install 2.7.18)" >&2
    exit 2
fi

# The newest releases that still run on Python 2.7 (urllib3 is not needed: utils.py speaks
# HTTP over raw sockets and httplib).
pins=(unittest2==1.1.0 websocket-client==0.59.0 ws4py==0.3.4)
deps="$DISCODEIT_CACHE_DIR/sockjs-protocol-py27"
stamp="$deps/.pins"
if [[ ! -f $stamp || "$(cat "$stamp")" != "${pins[*]}" ]]; then
    _log "installing ${pins[*]} into $deps"
    rm -rf "$deps"
    mkdir -p "$deps"
    "$python" -m pip install --disable-pip-version-check --no-warn-script-location -q \
        --target "$deps/site" "${pins[@]}"
    # utils.py imports httplib_fork, the repository's copy of Python 2.7's httplib, only to
    # send the request of old_POST_async; the standard module does that the same way. Used
    # only when SUITE_DIR has no httplib_fork.py (the suite's directory comes first on sys.path).
    echo 'from httplib import *' >"$deps/site/httplib_fork.py"
    echo "${pins[*]}" >"$stamp"
fi

# --- The server ---------------------------------------------------------------------------
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --example sockjs-test-server
work="$(mktemp -d /tmp/sockjs-conformance.XXXXXX)"
"$target/debug/examples/sockjs-test-server" --port 0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

url=""
for _ in $(seq 200); do
    url="$(sed -n 's/^SockJS test server on \(http:[^ ]*\)$/\1/p' "$work/server.out")"
    [[ -n $url ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
done
if [[ -z $url ]]; then
    echo "sockjs-test-server did not start:" >&2
    cat "$work/server.err" >&2
    exit 1
fi
_log "sockjs-test-server on $url; suite from $suite"

# --- The suite ----------------------------------------------------------------------------
status=0
# shellcheck disable=SC2086 # SOCKJS_TESTS is a list of test names
(cd "$suite" && SOCKJS_URL="$url" PYTHONPATH="$deps/site" PYTHONDONTWRITEBYTECODE=1 \
    "$python" sockjs-protocol.py ${SOCKJS_TESTS:-}) >"$work/suite.log" 2>&1 || status=$?
cat "$work/suite.log"

ran="$(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} in .*/\1/p' "$work/suite.log" | tail -1)"
failed="$(grep -cE '^(FAIL|ERROR): ' "$work/suite.log" || true)"
if [[ -z $ran ]]; then
    echo "sockjs-protocol: the suite did not run (exit $status)" >&2
    exit 1
fi
echo
grep -E '^(FAIL|ERROR): ' "$work/suite.log" || true
echo "sockjs-protocol: $((ran - failed)) passed, $failed failed"
if ((status != 0 || failed != 0)); then
    exit 1
fi
