#!/usr/bin/env bash
# `./run lab`: sets up the machine, builds podnet, starts a two-node lab and walks through the five
# seed tutorials of shared/seeds/ on it (`podnet tutorial run all`): every command of each tutorial
# run with the real kubectl and helm, its output shown and checked. Run as root. The lab stays up at
# the end so you can keep exploring; `podnet down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

./scripts/setup.sh
echo "building podnet (release; the first build takes a few minutes)..."
# The node agents run pods with the per-container supervisor (podnet-shim, of podnet-runtime) and the
# sandbox process (podnet-pause), found beside the podnet executable.
cargo build --release -q -p podnet -p podnet-cni -p podnet-runtime -p podnet-pause
echo "building the substitutes for the tutorials' images (cached; the first time takes a few minutes)..."
PODNET=target/release/podnet ./scripts/substitutes.sh
export PATH="$PWD/target/release:$PWD/.cache/tools:$PATH"

echo "starting a fresh two-node lab..."
podnet down >/dev/null 2>&1 || true
podnet up --nodes 2 --mode vxlan
podnet tutorial run all

BOLD=$'\033[1m'; OFF=$'\033[0m'
printf '\n%sThe five walkthroughs passed (%d s in all). The lab is still running:%s\n' "$BOLD" $((SECONDS - started)) "$OFF"
cat <<EOT
  export PATH="$PWD/target/release:$PWD/.cache/tools:\$PATH"
  podnet tutorial run 004              # walk through one tutorial again (podnet tutorial list)
  cat examples/seed-004/walkthrough.yaml   # the commands it runs, to type by hand
  podnet node exec node1 -- bash       # log in to node1 (exit to leave)
  podnet mode host-gw|gateway|vxlan    # switch how pods cross between nodes
  kubectl get pods -A -o wide          # the control plane (context "podnet" in your kubeconfig)
  podnet down                          # remove the lab
EOT
