#!/bin/bash
# Builds (or reuses) the qemu tier's kernel and base initramfs.
#
#   qemu/build-initramfs.sh [BINARY...]
#
# - Fetches Debian's kernel image package (the one `linux-image-amd64`
#   depends on) and busybox-static with `apt-get download`, unpacks them with
#   `dpkg-deb -x` into the cache ($TORTIE_QEMU_CACHE, default
#   <workspace>/target/qemu-cache) and makes the missing modules.dep with
#   busybox `depmod -b`. Done once; later runs reuse the cache. When the
#   kernel has a PVH entry, the uncompressed ELF vmlinux is cut out of the
#   bzImage and booted instead (no xz decompression under emulation).
# - Builds an uncompressed initramfs (newc cpio): busybox applets (never its
#   `ip`), dash, iproute2's `ip`, the shared libraries of those and of every
#   BINARY given (so a glibc test binary shared over 9p runs unchanged), the
#   kernel modules the tier needs (with their dependencies), and qemu/init.
#   Rebuilt only when its inputs change.
#
# Prints two lines on stdout: `KERNEL=<path>` and `INITRAMFS=<path>`.
# Exit status 3 (with the reason on stderr) when the parts cannot be had
# (no apt/dpkg-deb, registry unreachable and nothing cached).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CACHE=${TORTIE_QEMU_CACHE:-$ROOT/target/qemu-cache}
# Modules loaded at boot (virtio PCI, 9p over virtio, veth) and the ones the
# tests need (ipip: autoloaded by the kernel when felix creates tunl0;
# bridge: the lab's subnets, autoloaded too).
MODULES=(virtio_pci 9pnet_virtio 9p veth ipip tunnel4 ip_tunnel bridge stp llc)
# Busybox applets linked into the image. Not `ip`: iproute2's is used.
APPLETS=(cat cp cut dmesg echo grep head hostname insmod ln ls lsmod mkdir modprobe
    mount ping poweroff reboot rm sed sleep sync sysctl tail tr uname umount)

log() { echo "build-initramfs: $*" >&2; }
unavailable() { echo "build-initramfs: UNAVAILABLE: $*" >&2; exit 3; }
die() { echo "build-initramfs: ERROR: $*" >&2; exit 1; }

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
# One builder at a time per cache (parallel CI jobs, two terminals).
exec 9>"$CACHE/.lock"
flock 9

# ---- 1. kernel package and busybox-static, once ---------------------------
fetch() {
    command -v dpkg-deb >/dev/null || unavailable "dpkg-deb not found (needs a Debian host)"
    command -v apt-get >/dev/null || unavailable "apt-get not found (needs a Debian host)"
    local kpkg
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
    [ -n "$kpkg" ] || unavailable "cannot resolve linux-image-amd64 (apt-get update?)"
    log "fetching $kpkg and busybox-static"
    local dl="$CACHE/debs"
    rm -rf "$dl" && mkdir -p "$dl"
    # _apt cannot write into root-owned dirs; the warning about it is noise.
    (cd "$dl" && apt-get download "$kpkg" busybox-static) >&2 ||
        unavailable "apt-get download $kpkg busybox-static failed"
    rm -rf "$CACHE/kernel" "$CACHE/busybox"
    dpkg-deb -x "$dl"/linux-image-*.deb "$CACHE/kernel"
    dpkg-deb -x "$dl"/busybox-static_*.deb "$CACHE/busybox"
    rm -rf "$dl"
    local kver
    kver=$(ls "$CACHE/kernel/lib/modules")
    # The package's postinst would run depmod; dpkg-deb -x does not.
    log "depmod for $kver"
    "$CACHE/busybox/bin/busybox" depmod -b "$CACHE/kernel" "$kver"
    echo "$kpkg" >"$CACHE/fetched"
}
[ -f "$CACHE/fetched" ] || fetch

KVER=$(ls "$CACHE/kernel/lib/modules")
KERNEL=$(ls "$CACHE"/kernel/boot/vmlinuz-*)
# Boot the uncompressed ELF kernel through its PVH entry when it has one:
# under TCG the bzImage's own xz decompression costs ~4 s of every boot.
# The xz stream is followed by the rest of the bzImage, so xz reports
# "corrupt data" after the full kernel: accept any output that is an ELF.
VMLINUX="$CACHE/kernel/vmlinux-$KVER"
if [ ! -f "$VMLINUX" ] && grep -q '^CONFIG_PVH=y' "$CACHE"/kernel/boot/config-* &&
    command -v xz >/dev/null; then
    off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$KERNEL" | head -n1 | cut -d: -f1)
    if [ -n "$off" ]; then
        tail -c +$((off + 1)) "$KERNEL" | xz -dcq >"$VMLINUX.tmp" 2>/dev/null || true
        if [ "$(head -c4 "$VMLINUX.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
            mv "$VMLINUX.tmp" "$VMLINUX"
            log "extracted $(basename "$VMLINUX") for PVH boot"
        fi
        rm -f "$VMLINUX.tmp"
    fi
fi
[ -f "$VMLINUX" ] && KERNEL=$VMLINUX
BUSYBOX="$CACHE/busybox/bin/busybox"
MODDIR="$CACHE/kernel/lib/modules/$KVER"

# ---- 2. the initramfs, when its inputs changed ----------------------------
IP_BIN=$(readlink -f "$(command -v ip)")
DASH_BIN=$(readlink -f "$(command -v dash)")
[ -x "$IP_BIN" ] || unavailable "iproute2's ip not found on the host"
[ -x "$DASH_BIN" ] || unavailable "dash not found on the host"

# Shared libraries of the given executables, one path per line.
libs_of() {
    local f
    for f in "$@"; do
        ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true
    done | sort -u
}
# Host tools copied in when present: tcpdump lets tests show the packets on
# the wire (outer and inner IP headers).
OPTIONAL=()
for t in tcpdump; do
    p=$(command -v "$t" || true)
    if [ -n "$p" ]; then OPTIONAL+=("$(readlink -f "$p")"); fi
done
LIBS=$(libs_of "$IP_BIN" "$DASH_BIN" "${OPTIONAL[@]}" "$@")
KEY=$( (cat "$HERE/init" "${BASH_SOURCE[0]}"; echo "$KVER $IP_BIN $DASH_BIN ${OPTIONAL[*]}";
    echo "$LIBS") | sha256sum | cut -c1-16)
OUT="$CACHE/initramfs-$KEY.cpio"

if [ ! -f "$OUT" ]; then
    log "building $OUT"
    STAGE="$CACHE/stage"
    rm -rf "$STAGE"
    mkdir -p "$STAGE"/{usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,run,tmp,root,etc,mnt}
    # Merged /usr like the host, so every library path ldd printed resolves.
    ln -s usr/bin "$STAGE/bin"
    ln -s usr/sbin "$STAGE/sbin"
    ln -s usr/lib "$STAGE/lib"
    ln -s usr/lib64 "$STAGE/lib64"
    mkdir -p "$STAGE/var" && ln -s ../run "$STAGE/var/run"

    cp "$BUSYBOX" "$STAGE/usr/bin/busybox"
    for a in "${APPLETS[@]}"; do ln -s busybox "$STAGE/usr/bin/$a"; done
    ln -s ../bin/busybox "$STAGE/usr/sbin/modprobe" # the kernel's usermode helper path
    cp "$IP_BIN" "$STAGE/usr/sbin/ip"
    cp "$DASH_BIN" "$STAGE/usr/bin/dash"
    ln -s dash "$STAGE/usr/bin/sh"
    for t in "${OPTIONAL[@]}"; do cp "$t" "$STAGE/usr/bin/"; done
    # getpwnam("root") for tools that drop privileges (tcpdump -Z root).
    echo 'root:x:0:0:root:/root:/bin/sh' >"$STAGE/etc/passwd"
    echo 'root:x:0:' >"$STAGE/etc/group"
    for lib in $LIBS; do
        dest="$STAGE/usr${lib#/usr}"
        mkdir -p "$(dirname "$dest")"
        cp -L "$lib" "$dest"
    done

    # Modules: the wanted ones and everything modules.dep says they need.
    need=$(for m in "${MODULES[@]}"; do
        awk -v m="$m" -F': *' '{ n = $1; sub(".*/", "", n) }
            n == m ".ko" { print $1; if ($2 != "") print $2 }' "$MODDIR/modules.dep"
    done | tr ' ' '\n' | sed '/^$/d' | sort -u)
    for m in "${MODULES[@]}"; do
        grep -q "/$m.ko$" <<<"$need" || die "module $m not in $MODDIR/modules.dep"
    done
    dst="$STAGE/usr/lib/modules/$KVER"
    mkdir -p "$dst"
    for p in $need; do
        mkdir -p "$dst/$(dirname "$p")"
        cp "$MODDIR/$p" "$dst/$p"
    done
    awk 'NR == FNR { keep[$0] = 1; next } { k = $1; sub(":$", "", k) } keep[k]' \
        <(echo "$need") "$MODDIR/modules.dep" >"$dst/modules.dep"
    names=$(echo "$need" | sed 's,.*/,,; s,\.ko$,,')
    awk 'NR == FNR { keep[$0] = 1; next } $1 == "alias" && keep[$3]' \
        <(echo "$names") "$MODDIR/modules.alias" >"$dst/modules.alias"
    cp "$MODDIR/modules.builtin" "$dst/"

    cp "$HERE/init" "$STAGE/init"
    chmod 755 "$STAGE/init"
    (cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc) >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    # Keep only the newest few images.
    ls -t "$CACHE"/initramfs-*.cpio | tail -n +4 | xargs -r rm -f
    log "initramfs $(du -h "$OUT" | cut -f1)"
fi

echo "KERNEL=$KERNEL"
echo "INITRAMFS=$OUT"
