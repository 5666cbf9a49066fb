#!/bin/sh
# What each client of the scene (setup.yaml) can reach: one line per attempt, "ok" or "blocked".
# Blocked connections are dropped, so each takes the 2 s timeout. (`timeout 2 wget`, not `wget -T 2`:
# the busybox substitute's wget crashes on -T.)
KUBECTL=${KUBECTL:-kubectl}
attempt() { # namespace, what, command...
    ns=$1; what=$2; shift 2
    if $KUBECTL exec -n "$ns" client -- "$@" >/dev/null 2>&1; then r=ok; else r=blocked; fi
    printf '%-12s %-34s %s\n' "$ns/client" "$what" "$r"
}
for ns in shop ops; do
    attempt "$ns" "web.shop:80 (nginx)" timeout 2 wget -q -O /dev/null http://web.shop.svc.cluster.local
    attempt "$ns" "web.shop:8080 (echo server)" timeout 2 wget -q -O /dev/null http://web.shop.svc.cluster.local:8080
    attempt "$ns" "DNS: kubernetes.default" timeout 2 nslookup kubernetes.default.svc.cluster.local
    attempt "$ns" "203.0.113.10:80 (outside)" timeout 2 wget -q -O /dev/null http://203.0.113.10
done
