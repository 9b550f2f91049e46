#!/usr/bin/env bash
# A/B of stackd binaries on /write: each binary in turn (fresh data dir), ROUNDS rounds, wrk (1
# thread) at each of CONNS connections for DURATION s, POSTing one 35-line profiler body. Prints
# requests/s and stackd's CPU time per request (user + system, from /proc/<pid>/stat before and
# after the wrk run: steadier than the rate on a shared machine). Compare the medians.
#
#   cargo build --release && cp target/release/stackd /tmp/stackd-new
#   git stash && cargo build --release && cp target/release/stackd /tmp/stackd-old && git stash pop
#   benches/ab_write.sh /tmp/stackd-old /tmp/stackd-new
#   FIXTURE=spark ROUNDS=5 CONNS="32" benches/ab_write.sh /tmp/stackd-old /tmp/stackd-new
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: benches/ab_write.sh <stackd binary>..." >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
command -v wrk >/dev/null || { echo "needs wrk (Debian package wrk; benches/peers.sh installs it)" >&2; exit 1; }
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-6} CONNS=${CONNS:-4 32}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
(cd "$here" && cargo build --release --locked --bin stackd-load -q)
"$here/target/release/stackd-load" --print-body --fixture "${FIXTURE:-workload}" --app ab --lines 35 >"$work/body.txt"
export BODY="$work/body.txt"
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    rm -rf "$work/data"
    "$bin" --statsd-addr 127.0.0.1:49325 --http-addr 127.0.0.1:49386 --data-dir "$work/data" --log warn & pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:49386/ping && break; sleep 0.1; done
    wrk -t1 -c4 -d2s -s "$here/benches/write.lua" http://127.0.0.1:49386 >/dev/null # warm up
    for c in $CONNS; do
      before=$(cpu "$pid")
      out=$(wrk -t1 -c"$c" -d"${DURATION}s" -s "$here/benches/write.lua" http://127.0.0.1:49386)
      after=$(cpu "$pid")
      requests=$(echo "$out" | awk '/requests in/ {print $1}')
      rate=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
      echo "round $round $bin c=$c ${rate} req/s, $(python3 -c "print(round(($after - $before) / $ticks * 1e6 / $requests, 1))") us CPU a request${non2xx:+, $non2xx not 2xx}"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  done
done
