#!/usr/bin/env bash
# The lab: a local cluster in network namespaces on the embedded file
# datastore. Each node runs a real tortie-node (BGP node-to-node mesh,
# kernel routes through felix); each pod gets its address and routed veth
# from tortie-cni; two nodes share subnet A, the third sits behind a router
# on subnet B (IPIP CrossSubnet where the kernel has ipip, else VXLAN).
# It prints the nodes, each node's peer table and routes, and the
# pod-to-pod ping matrix (see docs/getting-started.md).
#
# Usage (root): scripts/lab.sh [--once] [tortiectl lab options, e.g. --nodes 5,
#   --stack dual for IPv4 and IPv6 pods (--stack ipv6: IPv6 only)]
#   --once: build, print, tear down (tortiectl lab demo);
#   without it the lab keeps running until Ctrl-C (tortiectl lab up, then down).
#   --kubernetes --kubelets: real kubelet nodes with Tortie installed from
#   deploy/ (needs `scripts/k8s.sh all` once; docs/getting-started.md).
set -euo pipefail
cd "$(dirname "$0")/.."

once=0
if [ "${1:-}" = "--once" ]; then once=1; shift; fi
[ "$(id -u)" = 0 ] || { echo "lab: run as root (network namespaces)"; exit 1; }

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
command -v nft >/dev/null || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
  echo "lab: installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "lab: cargo is needed to build Tortie (install Rust with rustup)"; exit 1; }
crates=(tortie-node tortie-cni tortie-ctl)
# The image of deploy/ (scripts/image.sh) holds tortie-rr too.
case " $* " in *" --kubelets "*) crates+=(tortie-rr) ;; esac
echo "lab: building ${crates[*]} (release)"
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
cargo build --release -q "${args[@]}"
ctl="$PWD/target/release/tortiectl"
name="l$$"   # unique: several labs can run side by side

if [ "$once" = 1 ]; then
  exec "$ctl" lab demo --name "$name" "$@"
fi
# tortiectl tears down a lab it was building when Ctrl-C came; one it
# finished, this does.
trap '[ ! -e "/run/tortie-lab/$name/lab.json" ] || "$ctl" lab down --name "$name"' EXIT
"$ctl" lab up --name "$name" "$@"
echo "lab: running; Ctrl-C tears it down"
while true; do sleep 3600; done
