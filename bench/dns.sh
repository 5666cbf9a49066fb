#!/usr/bin/env bash
# podnet-dns against unbound, both answering the same cluster names from local data, in the same run:
# dnsperf (DNS-OARC) on loopback, same duration and client settings for both, rounds interleaved.
# Prints QPS and average latency at saturation, p99 latency at a fixed rate, and podnet/unbound ratios.
# "hickory" is podnet-dns with hickory-server's stock UDP loop (--hickory-udp), to show what podnet's
# own UDP loop changes.
# Both servers get the same worker thread count (default 2: CoreDNS's published 33.7k QPS is on 2 vCPUs).
# Usage: bench/dns.sh [--duration S] [--rounds R] [--services N] [--threads T] [--rate QPS]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 rounds=2 services=1000 threads=2 rate=10000
while (($#)); do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --services) services=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "usage: bench/dns.sh [--duration S] [--rounds R] [--services N] [--threads T] [--rate QPS]" >&2; exit 2 ;;
  esac
done

./scripts/setup.sh >/dev/null
dns=$(./scripts/build-static.sh | grep '/podnet-dns$')

work=$(mktemp -d /tmp/pnt-dnsbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Ports from the pid, away from the usual ones.
p_podnet=$((20000 + $$ % 3000 * 3)) p_unbound=$((20001 + $$ % 3000 * 3)) p_hickory=$((20002 + $$ % 3000 * 3))

# The same data for both: $services Services in 10 namespaces plus nginx (ClusterIP, port http),
# web (headless, StatefulSet hostnames web-0..2) and one pod, in default.
python3 - "$work" "$services" "$p_unbound" "$threads" <<'EOF'
import json, sys
work, n, port, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
items, local = [], []
def svc(ns, name, ip, headless=False):
    items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": ns, "name": name},
                  "spec": {"clusterIP": "None" if headless else ip,
                           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    fqdn = f"{name}.{ns}.svc.cluster.local."
    if not headless:
        local.append(f"{fqdn} 30 IN A {ip}")
        local.append(f"_http._tcp.{fqdn} 30 IN SRV 0 100 80 {fqdn}")
for i in range(n):
    svc(f"ns-{i % 10}", f"svc-{i}", f"10.96.{(i // 250) + 1}.{i % 250 + 1}")
svc("default", "nginx", "10.96.0.20")
svc("default", "web", None, headless=True)
eps = [{"addresses": [f"10.244.1.{10 + k}"], "hostname": f"web-{k}", "conditions": {"ready": True}} for k in range(3)]
items.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"namespace": "default", "name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
              "addressType": "IPv4", "endpoints": eps, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]})
for k in range(3):
    local.append(f"web.default.svc.cluster.local. 30 IN A 10.244.1.{10 + k}")
    local.append(f"web-{k}.web.default.svc.cluster.local. 30 IN A 10.244.1.{10 + k}")
items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "default", "name": "client"},
              "status": {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}]}})
local.append("10-244-1-5.default.pod.cluster.local. 30 IN A 10.244.1.5")
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(f"{work}/objects.json", "w"))

conf = f"""server:
  interface: 127.0.0.1@{port}
  port: {port}
  num-threads: {threads}
  so-reuseport: yes
  do-ip6: no
  username: ""
  chroot: ""
  directory: "{work}"
  pidfile: "{work}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-daemonize: no
  access-control: 127.0.0.0/8 allow
  module-config: "iterator"
  local-zone: "cluster.local." static
  local-data: "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"
""" + "".join(f'  local-data: "{l}"\n' for l in local) + """remote-control:
  control-enable: no
"""
open(f"{work}/unbound.conf", "w").write(conf)

open(f"{work}/one.txt", "w").write("nginx.default.svc.cluster.local A\n")
mix = ["nginx.default.svc.cluster.local A", "nginx.default.svc.cluster.local AAAA",
       "_http._tcp.nginx.default.svc.cluster.local SRV", "web.default.svc.cluster.local A",
       "web-1.web.default.svc.cluster.local A", "10-244-1-5.default.pod.cluster.local A",
       # a pod's search path at work: NXDOMAIN
       "nginx.default.svc.cluster.local.default.svc.cluster.local A", "nope.default.svc.cluster.local A"]
mix += [f"svc-{i}.ns-{i % 10}.svc.cluster.local A" for i in range(0, n, max(1, n // 8))]
open(f"{work}/mix.txt", "w").write("\n".join(mix) + "\n")
EOF

"$dns" --listen "127.0.0.1:$p_podnet" --objects "$work/objects.json" --resolv-conf /dev/null \
  --health-listen 127.0.0.1:0 --ready-listen 127.0.0.1:0 --threads "$threads" 2>"$work/podnet.log" &
pids+=($!)
"$dns" --listen "127.0.0.1:$p_hickory" --objects "$work/objects.json" --resolv-conf /dev/null --hickory-udp \
  --health-listen 127.0.0.1:0 --ready-listen 127.0.0.1:0 --threads "$threads" 2>"$work/hickory.log" &
pids+=($!)
unbound -d -c "$work/unbound.conf" 2>"$work/unbound.log" &
pids+=($!)

# Wait (bounded) until both answer.
for port in "$p_podnet" "$p_hickory" "$p_unbound"; do
  for i in $(seq 50); do
    if dnsperf -s 127.0.0.1 -p "$port" -d "$work/one.txt" -n 1 -t 1 2>/dev/null | grep -q 'Queries completed:.*1 '; then
      break
    fi
    ((i == 50)) && { echo "dns bench: no answer on port $port" >&2; cat "$work"/*.log >&2; exit 1; }
    sleep 0.2
  done
done

client=(-c 4 -T 2 -q 200 -t 2)
# saturation <port> <file>: "qps avg_ms lost"
saturation() {
  local out
  out=$(dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l "$duration" "${client[@]}" 2>&1)
  awk '/Queries per second:/ {q=$4} /Average Latency/ {a=$4*1000} /Queries lost:/ {l=$3}
       END {printf "%.0f %.3f %s\n", q, a, l}' <<<"$out"
}
# p99 <port> <file>: p99 latency in ms at $rate queries per second (per-query latencies from -v).
p99() {
  dnsperf -s 127.0.0.1 -p "$1" -d "$2" -l 5 -Q "$rate" -v "${client[@]}" 2>/dev/null |
    awk '$1 == ">" {print $NF}' | sort -g |
    awk '{v[NR]=$1} END {if (NR == 0) {print "nan"} else {i=int(NR*0.99); if (i < 1) i=1; printf "%.3f\n", v[i]*1000}}'
}

printf "dnsperf %s, %s s per run, %s rounds interleaved, clients %s, %s worker threads each, %s services\n" \
  "$(dnsperf -h 2>&1 | awk '/^Version/ {print $2}')" "$duration" "$rounds" "${client[*]}" "$threads" "$services"
printf "%-6s %-8s %10s %10s %9s %10s\n" load server QPS avg_ms lost "p99_ms@$rate"
for load in one mix; do
  declare -A best=()
  for r in $(seq "$rounds"); do
    for server in podnet hickory unbound; do
      case $server in podnet) port=$p_podnet ;; hickory) port=$p_hickory ;; *) port=$p_unbound ;; esac
      read -r qps avg lost < <(saturation "$port" "$work/$load.txt")
      p=$(p99 "$port" "$work/$load.txt")
      printf "%-6s %-8s %10s %10s %9s %10s\n" "$load" "$server" "$qps" "$avg" "$lost" "$p"
      best[$server.qps]=$(( qps > ${best[$server.qps]:-0} ? qps : ${best[$server.qps]:-0} ))
      best[$server.p99.$r]=$p
    done
  done
  awk -v a="${best[podnet.qps]}" -v b="${best[unbound.qps]}" -v h="${best[hickory.qps]}" -v load="$load" \
    'BEGIN {printf "%-6s best QPS podnet %d, hickory loop %d, unbound %d: podnet/unbound %.2f (target >= 1.00, and > 33,700 QPS), podnet/hickory loop %.2f\n", load, a, h, b, a / b, a / h}'
  unset best
done
grep -i -E "error|panic" "$work/podnet.log" "$work/hickory.log" >&2 || true
