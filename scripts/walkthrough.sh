#!/usr/bin/env bash
# The seed walkthrough on the lab: builds podnet, starts a 2-node lab, and shows each piece the
# tutorials in shared/seeds/ talk about, with the real tools (ip, bridge, nft, tcpdump, conntrack).
# Run as root via `./run lab`. The lab stays up at the end so you can keep exploring; `podnet down`
# removes it.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
echo "building podnet (release)..."
# The node agents run pods with the per-container supervisor (podnet-shim, of podnet-runtime) and the
# sandbox process (podnet-pause), found beside the podnet executable.
cargo build --release -q -p podnet -p podnet-cni -p podnet-runtime -p podnet-pause
echo "building the substitutes for the tutorials' images (cached; the first time takes a few minutes)..."
PODNET=target/release/podnet ./scripts/substitutes.sh
export PATH="$PWD/target/release:$PWD/.cache/tools:$PATH"

BOLD=$'\033[1m'; DIM=$'\033[2m'; OFF=$'\033[0m'
say()  { printf '\n%s== %s%s\n' "$BOLD" "$*" "$OFF"; }
note() { printf '%s%s%s\n' "$DIM" "$*" "$OFF"; }
run()  { printf '%s$ %s%s\n' "$BOLD" "$*" "$OFF"; "$@"; }

# Pod sandboxes for this tour: a network namespace attached by podnet-cni with the node's own CNI
# configuration, exactly what a runtime does for a pod's pause container.
SANDBOXES=()
sandbox() { # sandbox NODE NAME
  local node=$1 name=pnwalk-$2
  ip netns delete "$name" 2>/dev/null || true
  ip netns add "$name"
  SANDBOXES+=("$name")
  jq -c '.plugins[0] + {cniVersion: .cniVersion, name: .name}' "/var/lib/podnet/pn/nodes/$node/cni/net.d/10-podnet.conflist" |
    nsenter --net="/run/netns/pn-$node" env CNI_COMMAND=ADD CNI_CONTAINERID="$name" CNI_NETNS="/run/netns/$name" \
      CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$PWD/target/release/podnet-cni" | jq -r '.ips[0].address'
}
cleanup_sandboxes() { for ns in $(ip netns list | awk '/^pnwalk-/ {print $1}'); do ip netns delete "$ns"; done; }
cleanup_sandboxes

say "Seed 001: two nodes (10.100.0.2, .3) behind a router (10.100.0.1), a podCIDR each"
podnet down >/dev/null 2>&1 || true
run podnet up --nodes 2 --mode vxlan
run podnet node list
note "Each node is a network namespace (and a UTS namespace: hostname says its name):"
run ip netns list
run podnet node exec node1 -- hostname

say "Seed 004: the control plane came up with the lab; kubectl talks to it (context \"podnet\")"
run kubectl get nodes -o wide
note "Each node's pool of pod addresses (seed 004's own command):"
run kubectl get nodes --sort-by=.metadata.name --output=custom-columns=NAME:.metadata.name,IP:.status.addresses[0].address,PODS:.spec.podCIDR
run kubectl create deployment nginx --image=nginx
run kubectl create service nodeport nginx --tcp=80:80
run kubectl get service --selector=app=nginx
note "Each node's agent runs the pods bound to it: a pause sandbox, the pod's network from podnet-cni, runc containers:"
run kubectl wait --for=condition=Ready pod --selector=app=nginx --timeout=120s
run kubectl get pods --output wide --selector=app=nginx
POD_IP=$(kubectl get pods --selector=app=nginx -o jsonpath='{.items[0].status.podIP}')
POD_NODE=$(kubectl get pods --selector=app=nginx -o jsonpath='{.items[0].spec.nodeName}')
note "Seed 004: curl the pod from its node:"
run podnet node exec "$POD_NODE" -- curl -s "http://$POD_IP/" | head -4
note "Seed 004's docker ps on the node: the pause sandbox and the nginx container beside it:"
run podnet node ps "$POD_NODE"
run kubectl describe pod --selector=app=nginx

say "Seed 002/004: the NodePort Service answers on every node, and from outside the nodes"
NODE_PORT=$(kubectl get service nginx -o jsonpath='{.spec.ports[0].nodePort}')
run kubectl describe service nginx
note "From node1 to node2's address, and from the router (the lab's edge):"
run podnet node exec node1 -- curl -s -o /dev/null -w '%{http_code} from node2:%{remote_port}\n' "http://10.100.0.3:$NODE_PORT/"
run ip netns exec pn-router curl -s -o /dev/null -w '%{http_code} from node1:%{remote_port}\n' "http://10.100.0.2:$NODE_PORT/"
note "Each node's agent programs Services into one nftables table: verdict maps dispatch on address,"
note "protocol and port to one chain per service port, named after the Service:"
run podnet node exec node1 -- nft list table ip podnet-services | sed -n '1,60p'

say "Cluster DNS: two podnet-dns replicas behind kube-dns at 10.96.0.10, as clusters run CoreDNS"
run kubectl get deployment,service --namespace kube-system --selector=k8s-app=kube-dns -o wide
run kubectl run dnsprobe --image=busybox --restart=Never -- sleep 3600
run kubectl wait --for=condition=Ready pod/dnsprobe --timeout=120s
run kubectl exec dnsprobe -- cat /etc/resolv.conf
run kubectl exec dnsprobe -- nslookup nginx.default.svc.cluster.local
run kubectl exec dnsprobe -- wget -qO- http://nginx/ | head -4
kubectl delete pod dnsprobe --now >/dev/null
kubectl delete deployment nginx >/dev/null; kubectl delete service nginx >/dev/null

say "Images: the tutorials' images are substitutes from the lab's mirror (no registry is reachable here)"
note "Each upstream is tried first; when it is unreachable the lab's registry on 127.0.0.1 serves podnet's substitutes:"
run cat "/var/lib/podnet/pn/hosts.d/docker.io/hosts.toml"
MIRROR=$(jq -r .mirror.address /run/podnet/pn/state.json)
note "What the mirror holds for nginx, and how it says it is not the upstream image:"
skopeo inspect --tls-verify=false "docker://$MIRROR/docker.io/library/nginx:latest" |
  jq '{Digest, Labels: (.Labels | with_entries(select(.key | test("substitute|description|version"))))}' || true

say "Seed 000/004: log in to a node and look at its network"
run podnet node exec node1 -- ip -br addr
run podnet node exec node1 -- ip route
note "VXLAN mode: one device per node; per peer a route, a permanent neighbour and an FDB entry."
run podnet node exec node1 -- ip -d link show pn-vxlan
run podnet node exec node1 -- bridge fdb show dev pn-vxlan
run podnet node exec node1 -- ip neigh show dev pn-vxlan
run podnet node exec node1 -- cat /etc/cni/net.d/10-podnet.conflist

say "Seed 002/004: one IP per pod, a veth from the pod's eth0 to the node bridge"
A=$(sandbox node1 a); B=$(sandbox node2 b)
echo "pod a on node1: $A    pod b on node2: $B"
run ip -n pnwalk-a addr show eth0
run ip -n pnwalk-a route
note "The pod's eth0@ifN is one end of a veth; the other end sits on the node's bridge cni0:"
run podnet node exec node1 -- bridge link show
run podnet node exec node1 -- ip -br addr show cni0

say "Seed 003: pod to pod across nodes, no NAT"
run ip netns exec pnwalk-a busybox ping -c 2 "${B%/*}"
note "The same ping seen on node2's underlay: VXLAN (UDP 4789) carrying the pod addresses inside."
podnet node exec node2 -- timeout 3 tcpdump -ni eth0 -c 2 udp port 4789 2>/dev/null &
sleep 0.5; ip netns exec pnwalk-a busybox ping -c 1 "${B%/*}" >/dev/null; wait || true

say "Traffic leaving the cluster is masqueraded to the node's address"
run ip netns exec pnwalk-a busybox wget -q -O - http://203.0.113.10/
run podnet node exec node1 -- nft list table inet podnet-cni
run podnet node exec node1 -- conntrack -L -p tcp 2>/dev/null | head -3 || true

say "The same traffic, three ways between nodes: host-gw routes, routes on the gateway, VXLAN"
run podnet mode host-gw
run podnet node exec node1 -- ip route
run ip netns exec pnwalk-a busybox ping -c 1 "${B%/*}"
run podnet mode gateway
note "Seed 001: 'it adds routing rules to the gateway at 10.100.0.1':"
run ip -n pn-router route
run ip netns exec pnwalk-a busybox ping -c 1 "${B%/*}"
run podnet mode vxlan

say "Done. The lab is still running:"
cat <<EOF
  export PATH="$PWD/target/release:$PWD/.cache/tools:\$PATH"
  podnet node exec node1 -- bash       # log in to node1 (exit to leave)
  ip netns exec pnwalk-a sh            # a shell in pod a's network namespace
  podnet mode host-gw|gateway|vxlan    # switch how pods cross between nodes
  kubectl get nodes -o wide            # the control plane (context "podnet" in your kubeconfig)
  podnet down                          # remove the lab (then: ip netns delete pnwalk-a pnwalk-b)
EOF
