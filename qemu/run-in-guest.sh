#!/bin/bash
# Runs one host executable inside a small Linux guest under qemu (software
# emulation, TCG) and exits with its exit status.
#
#   qemu/run-in-guest.sh BINARY [ARGS...]
#
# Also usable as a cargo runner (`target.x86_64-unknown-linux-gnu.runner`):
# cargo passes the test executable and its arguments; the working directory
# is kept. The guest runs Debian's kernel (which has the ipip module) with an
# initramfs from qemu/build-initramfs.sh; the workspace (and the binary's
# and TORTIE_GUEST_BINS' directories if elsewhere) is shared read-only over
# 9p at the same path, so
# the glibc binary runs unchanged. See docs/ipip-qemu.md.
#
# Environment:
#   TORTIE_QEMU_REQUIRED=1  a missing qemu or kernel is a failure, not a skip
#                           (CI sets it)
#   TORTIE_QEMU_TIMEOUT     seconds before the guest is killed (default 600)
#   TORTIE_QEMU_MEM         guest memory (default 1024M)
#   TORTIE_QEMU_CACHE       cache directory (default <workspace>/target/qemu-cache)
#   TORTIE_GUEST_BINS       more host executables the command runs (their
#                           shared libraries go into the initramfs)
#   TORTIE_GUEST_ENV        "NAME=value ..." exported in the guest
#                           (RUST_BACKTRACE=1 RUST_LOG=... are passed as is)
#
# Exit status: the command's; 0 after printing "SKIP: <why>" when qemu
# cannot run here (unless TORTIE_QEMU_REQUIRED=1: then 1); 124 on timeout;
# 125 when the guest did not report a status.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
T0=$(date +%s.%N)

skip() {
    if [ "${TORTIE_QEMU_REQUIRED:-0}" = 1 ]; then
        echo "FAIL (TORTIE_QEMU_REQUIRED=1): $*" >&2
        exit 1
    fi
    echo "SKIP: $*"
    exit 0
}
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[ $# -ge 1 ] || { echo "usage: $0 BINARY [ARGS...]" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null ||
    skip "qemu-system-x86_64 is not installed (apt-get install --no-install-recommends qemu-system-x86)"
[ "$(uname -m)" = x86_64 ] || skip "the qemu tier needs an x86_64 host (this is $(uname -m))"
BIN=$(readlink -f "$1")
shift
[ -x "$BIN" ] || { echo "run-in-guest: $BIN is not an executable" >&2; exit 2; }

set +e
# shellcheck disable=SC2086 # TORTIE_GUEST_BINS is a list of paths
parts=$("$HERE/build-initramfs.sh" "$BIN" ${TORTIE_GUEST_BINS:-})
rc=$?
set -e
if [ $rc = 3 ]; then
    skip "no guest kernel/initramfs could be built (see the UNAVAILABLE line above)"
elif [ $rc != 0 ]; then
    echo "run-in-guest: build-initramfs.sh failed ($rc)" >&2
    exit $rc
fi
KERNEL=$(echo "$parts" | sed -n 's/^KERNEL=//p')
INITRAMFS=$(echo "$parts" | sed -n 's/^INITRAMFS=//p')
KERNEL=${TORTIE_QEMU_KERNEL:-$KERNEL}
CACHE=$(dirname "$INITRAMFS")
BUSYBOX="$CACHE/busybox/bin/busybox"

# Shares: the workspace, plus the binary's directory, the directories of
# TORTIE_GUEST_BINS and the working directory when they lie outside it
# (a CARGO_TARGET_DIR elsewhere).
CWD=$(pwd)
shares=("$ROOT")
dirs=("$(dirname "$BIN")" "$CWD")
for b in ${TORTIE_GUEST_BINS:-}; do dirs+=("$(dirname "$b")"); done
for d in "${dirs[@]}"; do
    covered=0
    for s in "${shares[@]}"; do
        case "$d/" in "$s"/*) covered=1 ;; esac
    done
    [ $covered = 1 ] || shares+=("$d")
done

# The per-run part of the initramfs: /tortie/run.env, appended as a second
# cpio archive (the kernel unpacks concatenated archives in order).
RUN=$(mktemp -d "${TMPDIR:-/tmp}/tortie-qemu.XXXXXX")
trap 'rm -rf "$RUN"' EXIT
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
mkdir -p "$RUN/root/tortie"
{
    tags=""
    virtfs=()
    i=0
    for s in "${shares[@]}"; do
        tags="$tags ws$i=$s"
        i=$((i + 1))
    done
    echo "TORTIE_SHARES=$(q "${tags# }")"
    echo "TORTIE_CWD=$(q "$CWD")"
    echo "TORTIE_ENV=$(q "RUST_BACKTRACE=${RUST_BACKTRACE:-1} ${RUST_LOG:+RUST_LOG=$RUST_LOG} ${TORTIE_GUEST_ENV:-}")"
    printf 'set --'
    printf ' %s' "$(q "$BIN")"
    for a in "$@"; do printf ' %s' "$(q "$a")"; done
    echo
} >"$RUN/root/tortie/run.env"
(cd "$RUN/root" && find tortie | "$BUSYBOX" cpio -o -H newc 2>/dev/null) >"$RUN/run.cpio"
cat "$INITRAMFS" "$RUN/run.cpio" >"$RUN/initrd.cpio"

args=(-accel tcg -M pc -cpu max -smp 1 -m "${TORTIE_QEMU_MEM:-1024M}"
    -nodefaults -no-user-config -nic none -display none -no-reboot
    -serial stdio
    -kernel "$KERNEL" -initrd "$RUN/initrd.cpio"
    -append "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off")
[ -f /usr/share/qemu/qboot.rom ] && args+=(-bios /usr/share/qemu/qboot.rom)
i=0
for s in "${shares[@]}"; do
    args+=(-virtfs "local,path=$s,mount_tag=ws$i,security_model=none,readonly=on")
    i=$((i + 1))
done

echo "run-in-guest: booting $(basename "$KERNEL") ($(basename "$INITRAMFS"), prepared in $(elapsed) s)"
LOG="$RUN/console.log"
set +e
timeout "${TORTIE_QEMU_TIMEOUT:-600}" qemu-system-x86_64 "${args[@]}" </dev/null 2>&1 |
    while IFS= read -r line; do
        line=${line%$'\r'}
        case "$line" in
        "tortie-init: kernel "*) echo "$line (host: $(elapsed) s since start)" ;;
        *) echo "$line" ;;
        esac
        echo "$line" >>"$LOG"
    done
qrc=${PIPESTATUS[0]}
set -e
status=$(sed -n 's/^TORTIE-QEMU-EXIT=\([0-9]*\)$/\1/p' "$LOG" 2>/dev/null | tail -n1)
echo "run-in-guest: total $(elapsed) s"
if [ "$qrc" = 124 ]; then
    echo "run-in-guest: TIMEOUT after ${TORTIE_QEMU_TIMEOUT:-600} s" >&2
    exit 124
fi
if [ -z "$status" ]; then
    echo "run-in-guest: the guest reported no exit status (qemu exit $qrc)" >&2
    exit 125
fi
exit "$status"
