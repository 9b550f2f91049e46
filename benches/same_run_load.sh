#!/usr/bin/env bash
# Same-run comparison of UDP and /write capacity between a base revision and the working tree:
# both release builds, measured alternately, 3 rounds, so that a noisy machine affects both
# alike. Each round: UDP flat out for 8 s (`stackd-load --udp-rate 0 --verify`, fresh data dir)
# to the base, to the working tree, and to the null receiver; then wrk (1 thread, 8 s, the
# 35-line profiler body of `stackd-load --print-body`) at 4 and 32 connections to each.
# Prints one line per measurement; compare the medians.
#
#   benches/same_run_load.sh <base revision>
#   FIXTURE=spark benches/same_run_load.sh <base revision>   # the body of Spark executors' stacks
set -euo pipefail
base_rev=${1:?usage: benches/same_run_load.sh <base revision>}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v wrk >/dev/null || { echo "needs wrk (Debian package wrk; benches/peers.sh installs it)" >&2; exit 1; }
work=$(mktemp -d)
base="$work/base"
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true
  git -C "$here" worktree remove --force "$base" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
git -C "$here" worktree add -f "$base" "$base_rev" -q
(cd "$base" && CARGO_TARGET_DIR="$here/target/same-run-load" cargo build --release --locked --bins -q)
cargo build --release --locked --bins -q
old="$here/target/same-run-load/release/stackd" new="$here/target/release/stackd" load="$here/target/release/stackd-load"
"$load" --print-body --fixture "${FIXTURE:-workload}" --app ab --lines 35 >"$work/body.txt"
export BODY="$work/body.txt"
start() { # binary
  rm -rf "$work/data"
  "$1" --statsd-addr 127.0.0.1:49125 --http-addr 127.0.0.1:49086 --data-dir "$work/data" --log warn & pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:49086/ping && return; sleep 0.1; done
  echo "stackd did not start" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
udp() { # binary
  start "$1"
  "$load" --statsd 127.0.0.1:49125 --http 127.0.0.1:49086 --udp-rate 0 --duration 8 --app ab --verify |
    python3 -c "import json,sys; d=json.load(sys.stdin); v=d['verify']; print(round(v['udp_received']/d['seconds']), 'received/s of', round(d['udp_sent_per_s']), 'sent/s; all stored:', v['ok'])"
  stop
}
write() { # binary connections
  start "$1"
  wrk -t1 -c"$2" -d8s --latency -s "$here/benches/write.lua" http://127.0.0.1:49086 | awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} END {print r, "req/s, p99", p}'
  stop
}
for round in 1 2 3; do
  echo "round $round udp $base_rev: $(udp "$old")"
  echo "round $round udp now: $(udp "$new")"
  "$load" --null-receiver 127.0.0.1:49225 --duration 8 >"$work/null.json" 2>/dev/null & n=$!
  sleep 0.3
  "$load" --statsd 127.0.0.1:49225 --udp-rate 0 --duration 8 --app ab >/dev/null
  wait "$n"
  echo "round $round udp null receiver: $(python3 -c "import json; d=json.load(open('$work/null.json')); print(round(d['received']/8), 'received/s')")"
  for c in 4 32; do
    echo "round $round write c=$c $base_rev: $(write "$old" "$c")"
    echo "round $round write c=$c now: $(write "$new" "$c")"
  done
done
