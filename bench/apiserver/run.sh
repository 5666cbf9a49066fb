#!/usr/bin/env bash
# The API server benchmark (see main.rs): builds the release bench binary, then runs it outside cargo
# so that cargo's build lock is free while it runs.
# Usage: bench/apiserver/run.sh [--creates N] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")/../.."
exe=$(cargo bench -q -p podnet-apiserver --bench apiserver --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "apiserver" and m.get("executable"):
        print(m["executable"])')
exec "$exe" "$@"
