#!/usr/bin/env bash
# stackd's resident memory: per 100,000 distinct stacks, per app, under the realistic mix (per
# distinct stack and per executor), and over a steady load (no growth). Release build, loopback, a fresh data dir; prints one JSON line per measurement.
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
"$bin/stackd-load" --statsd 127.0.0.1:48425 --udp-rate 40000 --stacks 100000 --executors 0 --duration 5 --app mem >/dev/null
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

# The realistic mix (stackd-load --print-bodies, agents' prefixes split by --prefix-labels), each
# body POSTed once over one keep-alive connection: what it costs per distinct stack and per
# executor (label set) when the stacks are Spark executors' (about 2 KB of text each).
post_mix() {
  python3 - "$1/index.txt" <<'EOF'
import http.client, sys
conn = http.client.HTTPConnection("127.0.0.1", 48486)
for path in open(sys.argv[1]).read().split():
    conn.request("POST", "/write?db=load", open(path, "rb").read())
    r = conn.getresponse(); r.read()
    assert r.status == 204, (path, r.status)
EOF
}
start_mix() {
  "$bin/stackd" --statsd-addr 127.0.0.1:48425 --http-addr 127.0.0.1:48486 --data-dir "$work/$1" --log warn --max-stacks-per-app 200000 \
    --prefix-labels SKIP.app.executor &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:48486/ping && break; sleep 0.1; done
}
stored_mix() { curl -s http://127.0.0.1:48486/apps | python3 -c "
import json, sys
apps = json.load(sys.stdin)
print(sum(a['unique_stacks'] for a in apps), sum(len(a['labels'].get('executor', {})) for a in apps))"; }
measure_mix() {
  start_mix "mix-$1"
  before=$(rss "$pid")
  post_mix "$work/mix-$1"
  sleep 2
  after=$(rss "$pid")
  read -r stacks executors < <(stored_mix)
  last_growth=$((after - before)) last_executors=$executors
  echo "{\"what\":\"mix-$1\",\"bodies\":$(wc -l <"$work/mix-$1/index.txt"),\"unique_stacks\":$stacks,\"executors\":$executors,\"rss_before_mib\":$((before / 1024)),\"rss_after_mib\":$((after / 1024)),\"kib_growth\":$((after - before)),\"mib_per_100k_stacks\":$(python3 -c "print(round(($after-$before)/1024*100000/$stacks, 1))")}"
  stop
}
# (1) About 100,000 distinct stacks: 200 executors of 7 apps, 15 flush windows of 35 lines each.
"$bin/stackd-load" --print-bodies "$work/mix-stacks" --fixture spark --stacks 100000 --executors 200 --windows 15 --app mem >/dev/null
measure_mix stacks
# (2) 2,000 executors of 7 apps, one flush window each, then (3) the same bodies from one
# executor per app (each line's tags made its app's executor 0's): the difference is what 1,993
# more executors cost (their label sets and their counts of the same stacks).
"$bin/stackd-load" --print-bodies "$work/mix-executors" --fixture spark --executors 2000 --windows 1 --app mem >/dev/null
measure_mix executors
many_growth=$last_growth many_executors=$last_executors
mkdir -p "$work/mix-one"
python3 - "$work/mix-executors" "$work/mix-one" <<'EOF'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
paths = []
for path in open(os.path.join(src, "index.txt")).read().split():
    text = open(path).read()
    text = re.sub(r"hostname=[^,]*,jvmName=[^,]*,pid=[^,]*,prefix=spark\.(mem-mix-\d+)\.\d+",
                  r"hostname=worker-0,jvmName=20000@worker-0,pid=20000,prefix=spark.\1.0", text)
    out = os.path.join(dst, os.path.basename(path))
    open(out, "w").write(text)
    paths.append(out)
open(os.path.join(dst, "index.txt"), "w").write("\n".join(paths) + "\n")
EOF
measure_mix one
echo "{\"what\":\"per_executor\",\"kib_per_executor\":$(python3 -c "print(round(($many_growth - $last_growth) / ($many_executors - $last_executors), 2))")}"

# Steady load: UDP at 20,000 datagrams/s and /write at 500 requests/s (2 connections), 2,000
# distinct stacks, for STEADY seconds; RSS sampled every second.
start steady
"$bin/stackd-load" --statsd 127.0.0.1:48425 --http 127.0.0.1:48486 --udp-rate 20000 --executors 0 --write-connections 2 --write-rate 500 \
  --duration "$STEADY" --pid "$pid" --verify --app steady | python3 -c "
import json, sys
r = json.load(sys.stdin)
print(json.dumps({'what': 'steady', 'seconds': round(r['seconds']), 'rss_mib': r['rss_mib'], 'verify_ok': r['verify']['ok'],
                  'udp_stored': r['verify']['udp_stored'], 'http_lines_stored': r['verify']['http_lines_stored']}))"
stop
