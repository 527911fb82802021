#!/usr/bin/env bash
# A local lab in network namespaces, on the embedded file datastore: the
# tortie-cni plugin gives each pod an address from a block its node claims
# (block IPAM) and a routed veth; tortie-rr reflects the nodes' blocks; the
# pods then ping each other across the nodes by plain IP routing.
#
#        pod1 (CNI: 10.244.x.y/32)              pod2 (CNI: 10.244.x.y/32)
#          | routed veth, proxy ARP               | routed veth, proxy ARP
#   node1 172.30.0.11 ---+--- switch ---+--- node2 172.30.0.12
#   BIRD: announces node1's block        |   BIRD: announces node2's block
#                            rr 172.30.0.1: tortie-rr (route reflector)
#
# Interim: until tortie-node exists (it will replace BIRD on the nodes),
# the nodes run BIRD 2 as their BGP speaker and kernel route writer.
#
# Usage (root): scripts/lab.sh [--once]
#   --once: tear the lab down after the checks instead of waiting for Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

once=0
[ "${1:-}" = "--once" ] && once=1
[ "$(id -u)" = 0 ] || { echo "lab: run as root (network namespaces)"; exit 1; }

need=()
command -v bird >/dev/null || need+=(bird2)
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
if [ ${#need[@]} -gt 0 ]; then
  echo "lab: installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "lab: cargo is needed to build tortie-rr (install Rust with rustup)"; exit 1; }
echo "lab: building tortie-rr and tortie-cni"
cargo build --release -q -p tortie-rr -p tortie-cni
rr_bin="$PWD/target/release/tortie-rr"
cni_bin="$PWD/target/release/tortie-cni"

p="tl$$"                 # unique prefix: several labs can run side by side
dir=$(mktemp -d "/tmp/tortie-lab-XXXX")
ns() { echo "$p-$1"; }
cleanup() {
  for n in rr node1 node2 pod1 pod2 sw; do
    for pid in $(ip netns pids "$(ns $n)" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$(ns $n)" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

for n in sw rr node1 node2 pod1 pod2; do
  ip netns add "$(ns $n)"
  ip -n "$(ns $n)" link set lo up
done
ip -n "$(ns sw)" link add br0 type bridge
ip -n "$(ns sw)" link set br0 up
attach() { # host-ns name, address
  ip link add eth0 netns "$(ns $1)" type veth peer name "$1" netns "$(ns sw)"
  ip -n "$(ns sw)" link set "$1" master br0 up
  ip -n "$(ns $1)" addr add "$2/24" dev eth0
  ip -n "$(ns $1)" link set eth0 up
}
attach rr 172.30.0.1
attach node1 172.30.0.11
attach node2 172.30.0.12

cat >"$dir/rr.yaml" <<EOF
routerId: 172.30.0.1
asNumber: 64512
listen: "0.0.0.0:179"
admin: "127.0.0.1:9180"
dynamicPeers:
  - prefix: 172.30.0.0/24
    asNumber: 64512
EOF
ip netns exec "$(ns rr)" "$rr_bin" --config "$dir/rr.yaml" --state-dir "$dir/rr-state" >"$dir/rr.log" 2>&1 &
disown

# The embedded datastore: a directory with the user's resources.yaml; the
# plugin writes IPAM blocks, handles and endpoints next to it (file lock).
mkdir -p "$dir/store"
cat >"$dir/store/resources.yaml" <<EOF
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4
spec:
  cidr: 10.244.0.0/16
  blockSize: 26
EOF

node() { # n: node number
  local n=$1 node pod result ip block o1 o2 o3 o4
  node=$(ns "node$n"); pod=$(ns "pod$n")
  ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
  # Proxy ARP answers only for addresses the node can route elsewhere; a
  # real node has a default route, this one gets a route to the gateway.
  ip -n "$node" route add 169.254.1.1/32 dev eth0 scope link
  # The pod's network, as a container runtime asks for it (CNI ADD).
  result=$(printf '{"cniVersion":"1.0.0","name":"tortie","type":"tortie","nodeName":"node%s","datastore":{"type":"file","dir":"%s"}}' "$n" "$dir/store" |
    ip netns exec "$node" env -i CNI_COMMAND=ADD CNI_CONTAINERID="lab-pod$n" CNI_NETNS="/run/netns/$pod" \
      CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni PATH=/usr/sbin:/usr/bin:/sbin:/bin "$cni_bin")
  ip=$(printf '%s' "$result" | grep -o '"address":"[0-9.]*' | head -n1 | cut -d'"' -f4)
  [ -n "$ip" ] || { echo "lab: CNI ADD for pod$n failed: $result"; exit 1; }
  IFS=. read -r o1 o2 o3 o4 <<<"$ip"
  block="$o1.$o2.$o3.$((o4 & ~63))/26"
  echo "lab: pod$n got $ip (CNI ADD), from block $block of node$n"
  printf -v "pod${n}_ip" '%s' "$ip"
  cat >"$dir/bird$n.conf" <<EOF
router id 172.30.0.1$n;
protocol device {}
protocol direct { ipv4; interface "eth0"; }
protocol static blocks { ipv4; route $block blackhole; }
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
protocol bgp reflector {
  local 172.30.0.1$n as 64512; neighbor 172.30.0.1 as 64512;
  direct; connect retry time 1;
  ipv4 { import all; export where source = RTS_STATIC; next hop self; };
}
EOF
  ip netns exec "$node" bird -c "$dir/bird$n.conf" -s "$dir/bird$n.ctl" -P "$dir/bird$n.pid"
}
node 1
node 2

status() {
  ip netns exec "$(ns rr)" bash -c \
    'exec 3<>/dev/tcp/127.0.0.1/9180 && printf "GET /status HTTP/1.0\r\nHost: lab\r\n\r\n" >&3 && cat <&3' 2>/dev/null |
    sed -n '/^{/,$p'
}
echo "lab: waiting for the reflected routes"
for _ in $(seq 1 100); do
  if ip -n "$(ns node1)" route | grep -q "via 172.30.0.12" &&
     ip -n "$(ns node2)" route | grep -q "via 172.30.0.11"; then
    break
  fi
  sleep 0.2
done
echo "== tortie-rr /status"
status | python3 -m json.tool 2>/dev/null || status
echo "== node1 routes"; ip -n "$(ns node1)" route
echo "== node2 routes"; ip -n "$(ns node2)" route
echo "== pod1 ($pod1_ip) pings pod2 ($pod2_ip)"
ip netns exec "$(ns pod1)" ping -c 3 -W 2 "$pod2_ip"
echo "lab: OK: pods with CNI-assigned addresses on two nodes reach each other through routes reflected by tortie-rr"
if [ "$once" = 1 ]; then exit 0; fi
echo "lab: running; namespaces $p-*; logs in $dir; Ctrl-C tears it down"
while true; do sleep 3600; done
