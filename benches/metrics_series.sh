#!/usr/bin/env bash
# /metrics with many engine series: SERIES distinct Spark gauges (statsd, 50 apps) offered to a
# release stackd with its default --max-series, then /metrics fetched 10 times: the series
# exposed, the body size and the median and slowest time. Loopback only; stackd is stopped.
#
#   benches/metrics_series.sh                 # 300,000 offered
#   SERIES=100000 benches/metrics_series.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SERIES=${SERIES:-300000}
BIN=${BIN:-target/release/stackd}
[ -n "${BIN_BUILT:-}" ] || cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
"$BIN" --statsd-addr 127.0.0.1:48725 --http-addr 127.0.0.1:48786 --data-dir "$work" --log warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:48786/ping && break; sleep 0.1; done
python3 - "$SERIES" <<'PY'
import socket, sys, time
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(f"app-{i % 50}.driver.jvm.pool{i}.used:{i}|g".encode(), ("127.0.0.1", 48725))
    if i % 2000 == 0:
        time.sleep(0.01)
PY
sleep 3
for _ in $(seq 10); do curl -s -o "$work/m" -w '%{time_total}\n' http://127.0.0.1:48786/metrics; done > "$work/times"
python3 - "$work/times" "$work/m" <<'PY'
import statistics, sys
times = [float(t) for t in open(sys.argv[1])]
body = open(sys.argv[2]).read()
series = sum(1 for l in body.splitlines() if l.startswith("spark_jvm_pool"))
hits = [l for l in body.splitlines() if l.startswith('stackd_limit_hits_total{limit="series')]
print({"series_exposed": series, "bytes": len(body), "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3), "limit_hits": hits})
PY
