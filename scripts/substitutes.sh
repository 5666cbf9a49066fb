#!/usr/bin/env bash
# Builds the substitutes for the tutorials' images (nginx, httpd, ubuntu, busybox, echoserver, pause)
# and podnet's own dns and ingress images (localhost/podnet/dns:latest, localhost/podnet/ingress:latest)
# from Debian's packages, as an OCI image layout in /var/lib/podnet/_substitutes that `podnet up`
# pushes into each lab's image mirror. Layers are cached in .cache/images by recipe: a warm run
# takes seconds, a cold one a couple of minutes (it downloads Debian packages). As root.
#   PODNET=target/release/podnet ./scripts/substitutes.sh   (default: target/debug/podnet)
set -euo pipefail
cd "$(dirname "$0")/.."
PODNET=${PODNET:-target/debug/podnet}
[[ -x $PODNET ]] || { echo "substitutes.sh: $PODNET is not built" >&2; exit 1; }

echo "substitutes: building the static binaries"
args=()
while read -r bin; do
  case "$(basename "$bin")" in
    podnet-echoserver) args+=(--echoserver "$bin") ;;
    podnet-pause) args+=(--pause "$bin") ;;
    podnet-dns) args+=(--dns "$bin") ;;
    podnet-ingress) args+=(--ingress "$bin") ;;
  esac
done < <(./scripts/build-static.sh)
exec "$PODNET" image build-substitutes --cache .cache/images "${args[@]}"
