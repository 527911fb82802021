#!/bin/bash
# The qemu IPIP tier: builds felix's IPIP test executable and tortie-node's
# IPIP mesh test, boots Debian's kernel (which has the ipip module) under
# qemu and runs each there.
#
#   qemu/run-ipip-tests.sh [TEST-FILTER...]
#
# Exits non-zero when a test fails, when the guest reports no result, or when
# a test skipped inside the guest (IPIP must run there). Prints "SKIP: <why>"
# and exits 0 when qemu cannot run on this host; with TORTIE_QEMU_REQUIRED=1
# (CI) that is a failure too. See docs/ipip-qemu.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TEST=ipip_pods
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

cd "$ROOT"
# tortie-node's IPIP test drives the real binaries (shared over 9p), in
# release builds: debug ones under software emulation are too slow (an
# agent took minutes to start; CI's lab step has built these already).
# The same packages as scripts/lab.sh builds: another set unifies the
# dependencies' features differently and rebuilt tortie-node (minutes).
echo "run-ipip-tests: cargo build --release -p tortie-node -p tortie-cni -p tortie-ctl"
cargo build --release -q -p tortie-node -p tortie-cni -p tortie-ctl
rel="${CARGO_TARGET_DIR:-$ROOT/target}/release"

out=$(mktemp "${TMPDIR:-/tmp}/tortie-ipip.XXXXXX")
trap 'rm -f "$out"' EXIT
# One guest boot per test executable: felix's tunl0 and pod tests, then
# tortie-node's mesh over IPIP.
# Built with --workspace, not -p: the features of the dependencies are then
# the ones the workspace's test build already has, so nothing is compiled a
# second time (with -p, each package's own feature set rebuilt dozens of crates).
for entry in ipip_pods:felix node_ipip:tests; do
    IFS=: read -r TEST dir <<<"$entry"
    echo "run-ipip-tests: cargo test --workspace --test $TEST --no-run"
    bin=$(cargo test --workspace --test "$TEST" --no-run --message-format=json |
        grep '"reason":"compiler-artifact"' | grep "\"name\":\"$TEST\"" |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)
    [ -n "$bin" ] || { echo "run-ipip-tests: no executable for test $TEST in cargo's output" >&2; exit 2; }
    echo "run-ipip-tests: built $bin ($(elapsed) s)"
    # cargo runs a test executable in its package's directory: do the same.
    cd "$ROOT/$dir"
    set +e
    TORTIE_GUEST_BINS="$rel/tortie-node $rel/tortie-cni" TORTIE_GUEST_ENV="TORTIE_LAB_BIN_DIR=$rel" \
        "$HERE/run-in-guest.sh" "$bin" --test-threads=1 --nocapture "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    set -e
    cd "$ROOT"
    echo "run-ipip-tests: $TEST done at $(elapsed) s"
    if grep -q '^SKIP: ' "$out"; then
        exit "$rc" # run-in-guest.sh could not run qemu here and said why
    fi
    if [ "$rc" != 0 ]; then
        echo "run-ipip-tests: $TEST FAILED (exit $rc)" >&2
        exit "$rc"
    fi
    if grep -q '^SKIP ' "$out"; then
        echo "run-ipip-tests: FAILED: a test of $TEST skipped inside the guest (see SKIP above): the guest kernel must have ipip" >&2
        exit 1
    fi
    if ! grep -Eq '^test result: ok\. [1-9][0-9]* passed' "$out"; then
        echo "run-ipip-tests: FAILED: no test of $TEST ran in the guest (filter matched nothing?)" >&2
        exit 1
    fi
done
echo "run-ipip-tests: total $(elapsed) s"
echo "run-ipip-tests: ok"
