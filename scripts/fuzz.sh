#!/usr/bin/env bash
# scripts/fuzz.sh [--runs N | --seconds S] [target...]
#
# Builds the coverage-guided fuzz targets in fuzz/ (cargo-fuzz + libFuzzer) and runs each
# target for N executions or S seconds (default: 5 seconds each), starting from the committed
# seeds in fuzz/seeds/<target> plus a working corpus kept outside the repository
# ($FUZZ_CORPUS_DIR, default <cargo target dir>/fuzz-corpus). Prints one line per target:
# executions, libFuzzer's coverage (cov: edges, ft: features) and the corpus size.
# A crash, panic, leak or timeout fails the run; its input is saved in fuzz/artifacts/<target>/
# (reproduce with: scripts/fuzz.sh --runs 1 <target> -- fuzz/artifacts/<target>/<file>,
# or `cargo fuzz run <target> <file>`).
#
# The machine has one stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz's nightly-only
# flags through. No sanitizer by default (the crate is safe Rust; throughput matters more);
# FUZZ_SANITIZER=address turns AddressSanitizer on. Debug assertions and overflow checks are on.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL_TARGETS=(stomp_decoder stomp_session sockjs_input websocket_frames hixie76_frames sse
    multipart jwt router)
CARGO_FUZZ_VERSION=0.13.2

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    echo "targets: ${ALL_TARGETS[*]}"
}

runs="" seconds="" targets=() extra=()
while (($#)); do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
    esac
done
if [[ -z $runs && -z $seconds ]]; then seconds=5; fi
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
    [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "unknown target $t" >&2; exit 2; }
done

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "[fuzz] installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" >&2
fi

export RUSTC_BOOTSTRAP=1
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
corpus_root="${FUZZ_CORPUS_DIR:-$target_dir/fuzz-corpus}"
sanitizer="${FUZZ_SANITIZER:-none}"
flags=(-O --debug-assertions --sanitizer "$sanitizer" --target-dir "$target_dir/fuzz")

echo "[fuzz] building ${#ALL_TARGETS[@]} targets (sanitizer: $sanitizer)" >&2
cargo fuzz build "${flags[@]}" >&2

limit=()
if [[ -n $runs ]]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi

failed=0
printf '%-18s %12s %8s %8s %8s  %s\n' target executions cov ft corpus result
for t in "${targets[@]}"; do
    corpus="$corpus_root/$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    log="$corpus_root/$t.log"
    inputs=("$corpus" "fuzz/seeds/$t")
    ((${#extra[@]})) && inputs=("${extra[@]}")
    rc=0
    cargo fuzz run "${flags[@]}" "$t" "${inputs[@]}" -- \
        "${limit[@]}" -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    files=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    if ((rc == 0)); then
        result=ok
    else
        result="FAILED (exit $rc, log $log)"
        failed=$((failed + 1))
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
    fi
    printf '%-18s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${files:-?}" "$result"
done
((failed == 0)) || { echo "[fuzz] $failed target(s) failed" >&2; exit 1; }
