#!/usr/bin/env bash
# A tour of podnet-cni on throwaway namespaces (as root): a "node", two "pods" and an "outside" host.
# Every object lives in namespaces named pn-demo-*; they are removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null
cargo build --release -q -p podnet-cni
PLUGIN=$PWD/target/release/podnet-cni
DATA=$(mktemp -d /tmp/pn-demo-ipam.XXXX)

cleanup() {
  for ns in pn-demo-node pn-demo-pod1 pn-demo-pod2 pn-demo-world; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$DATA"
}
trap cleanup EXIT
cleanup; DATA=$(mktemp -d /tmp/pn-demo-ipam.XXXX)
for ns in pn-demo-node pn-demo-pod1 pn-demo-pod2 pn-demo-world; do ip netns add "$ns"; done
# The outside world: 203.0.113.10 (TEST-NET-3), linked to the node only.
ip -n pn-demo-node link add uplink type veth peer name eth0 netns pn-demo-world
ip -n pn-demo-node addr add 203.0.113.1/24 dev uplink; ip -n pn-demo-node link set uplink up
ip -n pn-demo-world addr add 203.0.113.10/24 dev eth0; ip -n pn-demo-world link set eth0 up; ip -n pn-demo-world link set lo up
mkdir -p "$DATA/www"; echo "hello from the outside world" > "$DATA/www/index.html"
ip netns exec pn-demo-world busybox httpd -p 203.0.113.10:80 -h "$DATA/www"

CONF='{"cniVersion":"1.1.0","name":"podnet","type":"podnet-cni","bridge":"cni0","mtu":1500,"ipMasq":true,
 "clusterCIDR":"10.244.0.0/16","hairpinMode":true,"ipam":{"subnet":"10.244.1.0/24","dataDir":"'"$DATA"'"}}'
cni() { echo "$CONF" | ip netns exec pn-demo-node env CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="/run/netns/$3" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$PLUGIN"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "ADD pod1 and pod2 (the runtime's view: one result per pod)"
cni ADD pod1 pn-demo-pod1 | jq -c .
cni ADD pod2 pn-demo-pod2 | jq -c '.ips'
step "Inside pod1: its eth0 and routes"
ip -n pn-demo-pod1 -br addr show eth0; ip -n pn-demo-pod1 route
step "On the node: the bridge, the host ends of the veth pairs, the masquerade table"
ip -n pn-demo-node -br link show master cni0; ip -n pn-demo-node -br addr show cni0
ip netns exec pn-demo-node nft list table inet podnet-cni
step "pod1 -> pod2 (same node, no NAT)"
ip netns exec pn-demo-pod1 busybox ping -c 2 10.244.1.3
step "pod1 -> the outside world (masqueraded to the node's 203.0.113.1)"
ip netns exec pn-demo-pod1 busybox wget -q -O - http://203.0.113.10/
step "DEL both; the address store is empty again"
cni DEL pod1 pn-demo-pod1; cni DEL pod2 pn-demo-pod2
jq -c . "$DATA/podnet/state.json"
