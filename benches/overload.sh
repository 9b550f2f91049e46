#!/usr/bin/env bash
# Overload run: measure stackd's UDP and /write capacity, then send twice that for DURATION
# seconds (default 60), with collapsed-stack imports and /query requests beside it, while a monitoring client probes /ping and /metrics every 100 ms, and
# check afterwards that everything stackd accepted is in its store. Prints one JSON report per
# phase. Loopback only; every process it starts is stopped on exit.
#
#   benches/overload.sh            # 60 s overload
#   DURATION=10 benches/overload.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
cargo build --release --locked --bins >/dev/null
data=$(mktemp -d)
./target/release/stackd --statsd-addr 127.0.0.1:48125 --http-addr 127.0.0.1:48086 --data-dir "$data" --log warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:48086/ping && break; sleep 0.1; done
load() { ./target/release/stackd-load --statsd 127.0.0.1:48125 --http 127.0.0.1:48086 --pid "$pid" --probe --verify "$@"; }
field() { python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, r))" "$1" "$2"; }

echo "# capacity: UDP flat out for 10 s"
udp=$(load --app cap-udp --udp-rate 0 --duration 10); echo "$udp"
udp_capacity=$(field "$udp" "int(verify['udp_stored'] / seconds)")
echo "# capacity: /write flat out, 4 connections, 10 s (no UDP)"
write=$(./target/release/stackd-load --http 127.0.0.1:48086 --app cap-write --write-connections 4 --write-rate 0 --duration 10 --verify); echo "$write"
write_capacity=$(field "$write" "int(writes_per_s)")
echo "# overload: UDP at 2 x $udp_capacity/s and /write at 2 x $write_capacity/s (8 connections) for $DURATION s"
load --app over --udp-rate $((2 * udp_capacity)) --write-connections 8 --write-rate $((2 * write_capacity)) \
  --import-connections 4 --import-lines 20000 --query-connections 2 --duration "$DURATION"
echo "# stackd after the overload"
curl -s http://127.0.0.1:48086/metrics | grep -E '^stackd_(udp_kernel_drops_total|udp_datagrams_total|udp_datagrams_processed_total|limit_hits_total|lines_rejected_total)' || true
