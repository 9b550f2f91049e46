#!/usr/bin/env bash
# stackd's resident memory: per 100,000 distinct stacks, per app, and over a steady load (no
# growth). Release build, loopback, a fresh data dir; prints one JSON line per measurement.
#
#   benches/memory.sh              # steady load for 600 s
#   STEADY=60 benches/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STEADY=${STEADY:-600}
cargo build --release --locked --bins >/dev/null
bin=target/release
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
start() {
  "$bin/stackd" --statsd-addr 127.0.0.1:48425 --http-addr 127.0.0.1:48486 --data-dir "$work/$1" --log warn --max-stacks-per-app 200000 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:48486/ping && break; sleep 0.1; done
}
drained() {
  for _ in $(seq 600); do
    m=$(curl -s http://127.0.0.1:48486/metrics)
    r=$(echo "$m" | awk '$1=="stackd_udp_datagrams_total" {print $2}')
    p=$(echo "$m" | awk '$1=="stackd_udp_datagrams_processed_total" {print $2}')
    [ "$r" = "$p" ] && return 0
    sleep 0.1
  done
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

# 100,000 distinct stacks (about 1 KB of text each, 15 to 46 frames) in one app, each sent twice.
start stacks
before=$(rss "$pid")
"$bin/stackd-load" --statsd 127.0.0.1:48425 --udp-rate 40000 --stacks 100000 --duration 5 --app mem >/dev/null
drained; sleep 2
after=$(rss "$pid")
stacks=$(curl -s http://127.0.0.1:48486/apps/mem-udp | python3 -c "import json,sys; print(json.load(sys.stdin)['unique_stacks'])")
echo "{\"what\":\"stacks\",\"unique_stacks\":$stacks,\"rss_before_mib\":$((before / 1024)),\"rss_after_mib\":$((after / 1024)),\"mib_per_100k_stacks\":$(python3 -c "print(round(($after-$before)/1024*100000/$stacks, 1))")}"
stop

# 1,000 apps of 10 stacks each (the fixture's frames under per-app prefixes).
start apps
before=$(rss "$pid")
python3 - <<'EOF'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
frames = "cpu.trace.com-example-Work-step-{i}.com-example-Work-run-10.java-lang-Thread-run-840"
for app in range(1000):
    for i in range(10):
        s.sendto(f"spark.app-{app}.1.{frames.format(i=i)}:1|g".encode(), ("127.0.0.1", 48425))
EOF
drained; sleep 2
after=$(rss "$pid")
apps=$(curl -s http://127.0.0.1:48486/apps | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
echo "{\"what\":\"apps\",\"apps\":$apps,\"rss_before_mib\":$((before / 1024)),\"rss_after_mib\":$((after / 1024)),\"kib_per_app\":$(python3 -c "print(round(($after-$before)/$apps, 1))")}"
stop

# Steady load: UDP at 20,000 datagrams/s and /write at 500 requests/s (2 connections), 2,000
# distinct stacks, for STEADY seconds; RSS sampled every second.
start steady
"$bin/stackd-load" --statsd 127.0.0.1:48425 --http 127.0.0.1:48486 --udp-rate 20000 --write-connections 2 --write-rate 500 \
  --duration "$STEADY" --pid "$pid" --verify --app steady | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(json.dumps({'what': 'steady', 'seconds': round(r['seconds']), 'rss_mib': r['rss_mib'], 'verify_ok': r['verify']['ok'],
                  'udp_stored': r['verify']['udp_stored'], 'http_lines_stored': r['verify']['http_lines_stored']}))"
stop
