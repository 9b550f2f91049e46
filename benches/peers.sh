#!/usr/bin/env bash
# stackd against its peers on this machine, in the same run, on loopback:
#
#   /write   wrk (1 thread) POSTing profiler bodies to InfluxDB 1.6 (Debian `influxdb`) and to
#            stackd, at 4 and 32 connections. First what a cluster sends: the realistic mix, 200
#            executors of 7 apps, 1,000 different bodies of 35 Spark executor stacks, at the
#            servers' now, then the same 30 minutes late. Then the micro-benchmark: one body
#            repeated, 35 lines of a small JVM program's stacks under a synthetic executor chain
#            (33 KB), and 35 lines of Spark executors' stacks recorded with JFR (72 KB);
#   burst    the mix's 200 executors all flushing at the start of every second, each on its own
#            connection (`stackd-load --burst`): how long until every one is answered;
#   UDP      stackd-load sending profiler datagrams (about 1 KB; the mix of prefixes: 200
#            executors of 7 apps, `spark.<app>.<executor>`, each flushing 35 stacks in turn) flat
#            out to a receiver that does nothing (`stackd-load --null-receiver`, same socket
#            buffer as stackd), to stackd, and to Etsy statsd (npm `statsd`); then at a set rate
#            to stackd and Etsy statsd.
#
# Every stackd figure is checked: what wrk saw answered 2xx and what stackd received over UDP
# must be in stackd's store afterwards. Prints one JSON line per measurement, then a table of
# medians over ROUNDS rounds with ratios against the peers. Installs what is missing (apt:
# influxdb, wrk; npm: statsd into ~/.cache/stackd-peers). Every process it starts is stopped on
# exit.
#
#   benches/peers.sh                         # 3 rounds of 10 s per measurement (about 9 min)
#   ROUNDS=5 DURATION=20 benches/peers.sh
#   SMOKE=1 benches/peers.sh                 # CI: 1 round of 1 s, debug build, no rate steps
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
RATES=${RATES:-100000 150000}
PROFILE=release
if [ -n "${SMOKE:-}" ]; then ROUNDS=1 DURATION=1 RATES="" PROFILE=debug; fi

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v influxd >/dev/null || missing+=(influxdb)
command -v wrk >/dev/null || missing+=(wrk)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  sudo_if_needed apt-get update -q >/dev/null
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
etsy=${ETSY_DIR:-$HOME/.cache/stackd-peers/etsy}
if [ ! -f "$etsy/node_modules/statsd/stats.js" ]; then
  mkdir -p "$etsy"
  (cd "$etsy" && npm install --silent --no-audit --no-fund statsd@0.9.0 >/dev/null)
fi
if [ "$PROFILE" = release ]; then cargo build --release --locked --bins >/dev/null; else cargo build --locked --bins >/dev/null; fi
bin=target/$PROFILE

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_http() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

# stackd, default settings (its embedded store, 32 MiB socket buffer), splitting the agents'
# prefixes `spark.<app>.<executor>` as the README says.
"$bin/stackd" --statsd-addr 127.0.0.1:48125 --http-addr 127.0.0.1:48086 --data-dir "$work/stackd" --log warn \
  --prefix-labels SKIP.app.executor &
stackd_pid=$!; pids+=("$stackd_pid")
wait_http http://127.0.0.1:48086/ping

# InfluxDB 1.6, its own files, no reporting.
mkdir -p "$work/influx"
cat >"$work/influx/influxdb.conf" <<EOF
reporting-disabled = true
bind-address = "127.0.0.1:48188"
[meta]
  dir = "$work/influx/meta"
[data]
  dir = "$work/influx/data"
  wal-dir = "$work/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:48186"
  log-enabled = false
[monitor]
  store-enabled = false
EOF
influxd -config "$work/influx/influxdb.conf" >"$work/influx/log" 2>&1 &
influx_pid=$!; pids+=("$influx_pid")
wait_http http://127.0.0.1:48186/ping
curl -sf -o /dev/null -XPOST 'http://127.0.0.1:48186/query' --data-urlencode 'q=CREATE DATABASE load'

# Etsy statsd: no backend, one flush an hour, so that its counters add up over a run.
cat >"$work/etsy.js" <<EOF
{ port: 48325, address: "127.0.0.1", mgmt_port: 48326, mgmt_address: "127.0.0.1", backends: [], flushInterval: 3600000 }
EOF
node "$etsy/node_modules/statsd/stats.js" "$work/etsy.js" >"$work/etsy.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/48326) 2>/dev/null && break; sleep 0.1; done
etsy_received() {
  exec 3<>/dev/tcp/127.0.0.1/48326
  printf 'counters\n' >&3
  timeout 1 cat <&3 | python3 -c "import re,sys; m=re.search(r\"'statsd.metrics_received': (\d+)\", sys.stdin.read()); print(m.group(1) if m else 0)"
  exec 3>&-
}
metric() { curl -s http://127.0.0.1:48086/metrics | python3 -c "import sys; n=sys.argv[1]; print(next((float(l.split()[-1]) for l in sys.stdin if l.startswith(n+' ')), 0.0))" "$1"; }

# The realistic mix, the same bytes for both servers (benches/mix.lua sends each request the
# next body): 200 executors of 7 apps, 5 flush windows each, every body a different window of
# 35 Spark executor stacks (rotated, so that stacks repeat across executors and flushes), with
# the tags the agent's InfluxDB reporter sends (hostname, jvmName, pid, prefix);
# "mix" carries no timestamps (the servers' now), "late" the same stacks 30 minutes old (outside
# stackd's in-memory window).
"$bin/stackd-load" --print-bodies "$work/mix" --fixture spark --lines 35 --app peers >/dev/null
"$bin/stackd-load" --print-bodies "$work/late" --fixture spark --lines 35 --app peerslate --late 1800 >/dev/null
# The micro-benchmark: one body repeated, 35 lines of the small workload's stacks (33 KB), and
# 35 lines of Spark executors' stacks (72 KB).
for fixture in workload spark; do
  "$bin/stackd-load" --print-body --app peers --lines 35 --fixture "$fixture" >"$work/body-$fixture.txt"
  # benches/mix.lua sends the bodies of an index in turn: here an index of one.
  mkdir -p "$work/$fixture" && echo "$work/body-$fixture.txt" >"$work/$fixture/index.txt"
done

results="$work/results.jsonl"
record() { echo "$1" | tee -a "$results"; }
wrk_json() { BODIES="$work/$3/index.txt" wrk -t1 -c"$2" -d"${DURATION}s" --timeout 10s -s benches/mix.lua "$1" | tail -n 1; }
# Samples stored for the apps of one kind of body.
stored_for() {
  local prefix
  case "$1" in mix) prefix='stackd_samples_total{app="peers-mix-' ;; late) prefix='stackd_samples_total{app="peerslate-mix-' ;; *) prefix='stackd_samples_total{app="peers-http"}' ;; esac
  curl -s http://127.0.0.1:48086/metrics | python3 -c "import sys; p=sys.argv[1]; print(sum(float(l.split()[-1]) for l in sys.stdin if l.startswith(p)))" "$prefix"
}

for round in $(seq "$ROUNDS"); do
  for fixture in mix late workload spark; do
    case "$fixture" in
      mix|late) lines=35; bytes=$(( $(cat "$work/$fixture"/body-*.txt | wc -c) / $(wc -l <"$work/$fixture/index.txt") )) ;;
      *) lines=$(wc -l <"$work/body-$fixture.txt"); bytes=$(wc -c <"$work/body-$fixture.txt") ;;
    esac
    body="\"body\":\"$fixture\",\"body_bytes\":$bytes"
    for conns in 4 32; do
      # Each server measured alone: the other is stopped (SIGSTOP) meanwhile, so that its
      # background work (InfluxDB compacts the series the mix created) is not measured as the
      # other's.
      kill -STOP "$stackd_pid"
      r=$(wrk_json http://127.0.0.1:48186 "$conns" "$fixture")
      kill -CONT "$stackd_pid"
      record "{\"round\":$round,\"what\":\"write\",\"peer\":\"influxdb\",$body,\"connections\":$conns,\"wrk\":$r}"
      before=$(stored_for "$fixture")
      kill -STOP "$influx_pid"
      r=$(wrk_json http://127.0.0.1:48086 "$conns" "$fixture")
      kill -CONT "$influx_pid"
      after=$(stored_for "$fixture")
      record "{\"round\":$round,\"what\":\"write\",\"peer\":\"stackd\",$body,\"connections\":$conns,\"wrk\":$r,\"stored_lines\":$(python3 -c "print(int($after-$before))"),\"lines_per_body\":$lines}"
    done
  done

  # The burst: every executor of the mix flushes at the start of every second.
  kill -STOP "$stackd_pid"
  r=$("$bin/stackd-load" --http 127.0.0.1:48186 --burst "$work/mix" --app peers --duration "$DURATION")
  kill -CONT "$stackd_pid"
  record "{\"round\":$round,\"what\":\"burst\",\"peer\":\"influxdb\",\"load\":$r}"
  kill -STOP "$influx_pid"
  r=$("$bin/stackd-load" --http 127.0.0.1:48086 --burst "$work/mix" --app peers --duration "$DURATION" --verify)
  kill -CONT "$influx_pid"
  record "{\"round\":$round,\"what\":\"burst\",\"peer\":\"stackd\",\"load\":$r}"

  # UDP flat out: the null receiver (the ceiling), stackd, Etsy statsd; InfluxDB, not measured
  # here, is stopped meanwhile.
  kill -STOP "$influx_pid"
  "$bin/stackd-load" --null-receiver 127.0.0.1:48225 --duration "$DURATION" >"$work/null.json" &
  null_pid=$!; sleep 0.3
  sent=$("$bin/stackd-load" --statsd 127.0.0.1:48225 --udp-rate 0 --duration "$DURATION" --app peers)
  wait "$null_pid"
  record "{\"round\":$round,\"what\":\"udp\",\"peer\":\"null\",\"rate\":0,\"load\":$sent,\"receiver\":$(cat "$work/null.json")}"
  r=$("$bin/stackd-load" --statsd 127.0.0.1:48125 --http 127.0.0.1:48086 --udp-rate 0 --duration "$DURATION" --app "peers$round-flat" --verify)
  record "{\"round\":$round,\"what\":\"udp\",\"peer\":\"stackd\",\"rate\":0,\"load\":$r}"
  e0=$(etsy_received)
  sent=$("$bin/stackd-load" --statsd 127.0.0.1:48325 --udp-rate 0 --duration "$DURATION" --app peers)
  sleep 2
  record "{\"round\":$round,\"what\":\"udp\",\"peer\":\"etsy\",\"rate\":0,\"load\":$sent,\"received\":$(( $(etsy_received) - e0 ))}"

  for rate in $RATES; do
    r=$("$bin/stackd-load" --statsd 127.0.0.1:48125 --http 127.0.0.1:48086 --udp-rate "$rate" --duration "$DURATION" --app "peers$round-$rate" --verify)
    record "{\"round\":$round,\"what\":\"udp\",\"peer\":\"stackd\",\"rate\":$rate,\"load\":$r}"
    e0=$(etsy_received)
    sent=$("$bin/stackd-load" --statsd 127.0.0.1:48325 --udp-rate "$rate" --duration "$DURATION" --app peers)
    sleep 2
    record "{\"round\":$round,\"what\":\"udp\",\"peer\":\"etsy\",\"rate\":$rate,\"load\":$sent,\"received\":$(( $(etsy_received) - e0 ))}"
  done
  kill -CONT "$influx_pid"
done

python3 benches/peers_table.py "$results"
