#!/usr/bin/env bash
# podnet-ingress against Debian's nginx (what ingress-nginx ran) and haproxy as the same reverse proxy,
# in the same run, on loopback: one backend (a second nginx serving a 612-byte page, as the default
# nginx page), each proxy with the same worker count, upstream keep-alive, X-Forwarded-For and the
# Host kept, access logs off for all three. wrk (Debian's) measures requests per second and p99
# latency with keep-alive connections and with a new connection per request (Connection: close);
# rounds interleave the proxies. Prints each figure and podnet's ratios to nginx and haproxy.
# Usage: bench/ingress.sh [--duration S (10)] [--rounds R (2)] [--connections C (64)] [--threads T (2)]
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 rounds=2 conns=64 threads=2
while (($#)); do
  case $1 in
    --duration) duration=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    *) echo "usage: bench/ingress.sh [--duration S] [--rounds R] [--connections C] [--threads T]" >&2; exit 2 ;;
  esac
done

./scripts/setup.sh >/dev/null
flock /tmp/podnet-cargo.lock cargo build --release -q -p podnet-ingress --bin podnet-ingress
podnet=target/release/podnet-ingress

work=$(mktemp -d /tmp/pnt-ingressbench.XXXXXX)
chmod 755 "$work" # nginx workers (user nobody) read the page
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Ports from the pid, away from the usual ones.
base=$((21000 + $$ % 2000 * 5))
p_backend=$base p_podnet=$((base + 1)) p_nginx=$((base + 2)) p_haproxy=$((base + 3)) p_tls=$((base + 4))

mkdir -p "$work/www" "$work/nginx-backend" "$work/nginx-proxy"
head -c 612 /dev/zero | tr '\0' 'x' > "$work/www/index.html"

common_nginx() { # $1: prefix dir
  cat <<EOF
worker_processes $threads;
pid $1/nginx.pid;
error_log $1/error.log warn;
daemon off;
events { worker_connections 4096; }
EOF
}

{ common_nginx "$work/nginx-backend"; cat <<EOF
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx-backend;
  server { listen 127.0.0.1:$p_backend; root $work/www; }
}
EOF
} > "$work/nginx-backend/nginx.conf"

# nginx as ingress-nginx configures it for one Service: upstream keep-alive, HTTP/1.1 to the
# endpoint, the client's Host and X-Forwarded-For.
{ common_nginx "$work/nginx-proxy"; cat <<EOF
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx-proxy;
  proxy_temp_path $work/nginx-proxy;
  upstream backend { server 127.0.0.1:$p_backend; keepalive 320; }
  server {
    listen 127.0.0.1:$p_nginx;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
EOF
} > "$work/nginx-proxy/nginx.conf"

cat > "$work/haproxy.cfg" <<EOF
global
  nbthread $threads
  maxconn 4096   # its FD limit (2 per connection) stays under the 20000 allowed; never raised
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:$p_haproxy
  default_backend be
backend be
  server s1 127.0.0.1:$p_backend
EOF

nginx -c "$work/nginx-backend/nginx.conf" -e "$work/nginx-backend/error.log" & pids+=($!)
nginx -c "$work/nginx-proxy/nginx.conf" -e "$work/nginx-proxy/error.log" & pids+=($!)
haproxy -f "$work/haproxy.cfg" -q & pids+=($!)
"$podnet" --backend "127.0.0.1:$p_backend" --http-listen "127.0.0.1:$p_podnet" \
  --https-listen "127.0.0.1:$p_tls" --no-access-log --threads "$threads" 2>"$work/podnet.log" & pids+=($!)

for port in $p_backend $p_podnet $p_nginx $p_haproxy; do
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/" || { echo "bench: nothing answers on port $port" >&2; exit 1; }
done

# wrk's p99 in milliseconds from its --latency table.
p99_ms() {
  awk '$1 == "99%" { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[a-z]+$/, "", v);
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : 1;
    printf "%.3f", v * f }'
}
rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }'; }

declare -A sum_rps=() sum_p99=() errors=()
run() { # $1 name, $2 port, $3 case
  local extra=()
  [[ $3 == new ]] && extra=(-H "Connection: close")
  local out
  out=$(wrk -t "$threads" -c "$conns" -d "${duration}s" --latency "${extra[@]}" "http://127.0.0.1:$2/")
  local r p e
  r=$(rps <<<"$out") p=$(p99_ms <<<"$out")
  e=$(awk '/Non-2xx|Socket errors/ { print }' <<<"$out" | tr '\n' ' ')
  printf '  %-8s %-10s %9s req/s   p99 %8s ms  %s\n' "$1" "$3" "$r" "$p" "$e"
  sum_rps[$1,$3]=$(( ${sum_rps[$1,$3]:-0} + r ))
  sum_p99[$1,$3]=$(awk -v a="${sum_p99[$1,$3]:-0}" -v b="$p" 'BEGIN { print a + b }')
  [[ -n $e ]] && errors[$1,$3]=1 || true
}

echo "ingress bench: $rounds rounds of ${duration}s, $conns connections, $threads proxy threads and $threads wrk threads"
for round in $(seq "$rounds"); do
  echo "round $round"
  for c in keepalive new; do
    run podnet $p_podnet $c
    run nginx $p_nginx $c
    run haproxy $p_haproxy $c
  done
done

echo
echo "averages over $rounds rounds (podnet / anchor: rps above 1 and p99 below 1 are podnet's wins)"
for c in keepalive new; do
  for n in podnet nginx haproxy; do
    printf '  %-10s %-8s %9.0f req/s   p99 %8.3f ms\n' "$c" "$n" \
      "$(awk -v s="${sum_rps[$n,$c]}" -v r="$rounds" 'BEGIN { print s / r }')" \
      "$(awk -v s="${sum_p99[$n,$c]}" -v r="$rounds" 'BEGIN { print s / r }')"
  done
  for a in nginx haproxy; do
    awk -v pr="${sum_rps[podnet,$c]}" -v ar="${sum_rps[$a,$c]}" -v pp="${sum_p99[podnet,$c]}" -v ap="${sum_p99[$a,$c]}" \
      -v c="$c" -v a="$a" 'BEGIN { printf "  %-10s podnet/%-7s rps %.2f   p99 %.2f\n", c, a, pr / ar, pp / ap }'
  done
done
if ((${#errors[@]})); then echo "note: some runs reported errors (see above)"; fi
