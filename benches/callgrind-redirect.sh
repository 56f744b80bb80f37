#!/usr/bin/env bash
# Instructions per redirect under callgrind, deterministic whatever else the
# machine does: benches/callgrind-redirect.sh BIN CONFIG LABEL. BIN is a
# release linkwright with its plugins beside it; one link `echo`, wrk -t1 -c16
# for 3 s of warm-up, then 5 s measured between callgrind_control zero and
# dump. Requests are counted by wrk: a /metrics scrape under valgrind trips
# callgrind on rustix's auxv probe (metrics-process).
set -euo pipefail
BIN=$1; CONFIG=$2; LABEL=$3
W=${TMPDIR:-/tmp}/linkwright-ir/$LABEL; rm -rf "$W"; mkdir -p "$W"
"$BIN" links create --config "$CONFIG" --data-dir "$W/data" --code echo "https://www.amazon.com/dp/B08N5WRWNW" >/dev/null
cd "$W"
valgrind --tool=callgrind --callgrind-out-file="$W/cg.%p" "$BIN" serve --config "$CONFIG" --data-dir "$W/data" \
  --public-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > "$W/out" 2> "$W/err" &
VPID=$!
for i in $(seq 1 600); do grep -q '^admin ' "$W/out" 2>/dev/null && break; sleep 0.1; done
PUB=$(grep "^public " "$W/out" | cut -d" " -f2)
UA="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
wrk -t1 -c16 -d3s -H "User-Agent: $UA" "$PUB/echo" >/dev/null
callgrind_control -z "$VPID" >/dev/null
wrk -t1 -c16 -d5s -H "User-Agent: $UA" "$PUB/echo" > "$W/wrk"
callgrind_control -d "$VPID" >/dev/null
kill -TERM "$VPID"; wait "$VPID" || true
TOTAL=$(for f in "$W"/cg.*.1; do callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'; done | sort -n | tail -1)
N=$(awk '/requests in/ {print $1}' "$W/wrk")
echo "$LABEL redirects=$N Ir_total=$TOTAL Ir_per_redirect=$((TOTAL / N))"
