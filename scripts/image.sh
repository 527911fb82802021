#!/usr/bin/env bash
# The container image of deploy/ (localhost/tortie:VERSION), with no
# registry and no container engine: a root directory of the machine's own
# files, packed as a one-layer docker-archive that `ctr -n k8s.io images
# import` loads on each node.
#
#   scripts/image.sh [--bin-dir DIR] [--out DIR]
#
# It holds /usr/local/bin/{tortie-node,tortie-rr,tortie-cni,tortiectl}
# (release builds, or those in --bin-dir), the shared libraries they and
# `nft` load (tortie-node applies NAT outgoing with `nft -j`), and busybox
# for the CNI install script and tortie-rr's start (sh, cat, sed, mv, ...).
# Before packing, each program is run in the root (chroot) to prove that
# nothing it loads is missing. Writes OUT/tortie.tar and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
TAG="localhost/tortie:$VERSION"
BIN_DIR=""
OUT=target/image
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 [--bin-dir DIR] [--out DIR]" >&2; exit 2 ;;
  esac
done
PROGRAMS="tortie-node tortie-rr tortie-cni tortiectl"
if [ -z "$BIN_DIR" ]; then
  cargo build --release -p tortie-node -p tortie-rr -p tortie-cni -p tortie-ctl >&2
  BIN_DIR=target/release
fi
for tool in busybox nft python3; do
  command -v "$tool" >/dev/null || { echo "image: needs $tool (apt-get install busybox-static nftables python3)" >&2; exit 1; }
done
ROOT="$OUT/root"
rm -rf "$ROOT"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/bin" "$ROOT/usr/sbin" "$ROOT/tmp" "$ROOT/etc" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/run"
chmod 1777 "$ROOT/tmp"

# copy_with_libs FILE DEST: the file and every library it loads (ldd).
copy_with_libs() {
  install -m 0755 "$1" "$2"
  ldd "$1" 2>/dev/null | grep -oE '/[^ ]+' | while read -r lib; do
    [ -e "$ROOT$lib" ] && continue
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
  done
}

for p in $PROGRAMS; do
  [ -x "$BIN_DIR/$p" ] || { echo "image: no $BIN_DIR/$p (cargo build first)" >&2; exit 1; }
  copy_with_libs "$BIN_DIR/$p" "$ROOT/usr/local/bin/$p"
  # Debug builds (the tests') carry ~10x their size in debug info; symbols
  # stay, for backtraces.
  if command -v strip >/dev/null; then strip --strip-debug "$ROOT/usr/local/bin/$p"; fi
done
copy_with_libs "$(command -v nft)" "$ROOT/usr/sbin/nft"
install -m 0755 "$(command -v busybox)" "$ROOT/bin/busybox"
for a in sh cat sed mv cp rm ln chmod mkdir sleep echo test ls grep; do
  ln -sf busybox "$ROOT/bin/$a"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$ROOT/etc/passwd"

# Prove it runs: each program in the root, with only what the root holds.
for p in tortie-node tortie-rr tortiectl; do
  chroot "$ROOT" "/usr/local/bin/$p" --version >/dev/null \
    || { echo "image: /usr/local/bin/$p does not start in the image's root" >&2; exit 1; }
done
CNI_COMMAND=VERSION chroot "$ROOT" /usr/local/bin/tortie-cni </dev/null | grep -q cniVersion \
  || { echo "image: tortie-cni does not answer VERSION in the image's root" >&2; exit 1; }
chroot "$ROOT" /usr/sbin/nft --version >/dev/null \
  || { echo "image: nft does not start in the image's root" >&2; exit 1; }
chroot "$ROOT" /bin/sh -c 'echo ok | sed s/ok/yes/ | grep -q yes' \
  || { echo "image: busybox sh does not work in the image's root" >&2; exit 1; }

python3 scripts/mkimage.py "$OUT/tortie.tar" "$TAG" "$ROOT"
echo "$OUT/tortie.tar ($TAG)"
