#!/usr/bin/env bash
# The whole test suite: unit tests, codec tables, property tests and the
# interop tests against real BIRD, FRR and GoBGP in network namespaces.
# Needs root (network namespaces) and the packages .ci/run installs.
# --no-fail-fast: a failing test binary does not hide the ones after it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
# IPIP pod-to-pod through tunl0, in a Debian kernel under qemu (software
# emulation); prints why it skips where qemu cannot run.
qemu/run-ipip-tests.sh
