#!/usr/bin/env bash
# What the explorer's page costs stackd: the `.tree` answer for an app of 20,000 distinct deep
# stacks (the real Spark executor stacks of tests/fixtures/jfr/spark.folded, each with leaves of
# its own) from four executors, two of them 30 minutes ago, uncached, beside the .svg, .json and
# .folded renders of the same selections; each round asks for another selection (the whole app,
# executors 1 and 2, all but executor 3, the last 10 minutes, three executors of the last hour),
# as people click through the page; medians over ROUNDS requests, of time and of answer size. The page's own time (first graph drawn, in
# Chromium) is printed by `cargo test --test explorer -- --nocapture` (ready_ms_20k).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
cargo build --release -q
dir=$(mktemp -d)
port=18186
./target/release/stackd --http-addr 127.0.0.1:$port --statsd-addr 127.0.0.1:18187 --data-dir "$dir/data" >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
python3 - "$port" <<'PY'
import sys, urllib.request
port = sys.argv[1]
import time
lines = [l.rsplit(" ", 1) for l in open("tests/fixtures/jfr/spark.folded").read().splitlines()]
bodies = [""] * 4
for i in range(20000):
    s, _ = lines[i % len(lines)]
    bodies[i % 4] += f"{s};com.example.Leaf{i // len(lines)}.work:{i % 97} {1 + i % 7}\n"
now = int(time.time())
for executor, b in enumerate(bodies, 1):
    at = now if executor <= 2 else now - 1800
    url = f"http://127.0.0.1:{port}/import/folded?app=wide-20k&executor={executor}&time={at}"
    urllib.request.urlopen(urllib.request.Request(url, data=b.encode())).read()
PY
selections=("" "executor=1,2" "executor!=3" "from=-10m" "executor=2,3,4&from=-1h")
echo "format  median_s  median_bytes  (uncached, $ROUNDS rounds over ${#selections[@]} selections)"
for ext in tree svg json folded; do
  for i in $(seq "$ROUNDS"); do
    # Another selection each round; title= differs too: a new render each time (the .tree
    # ignores it).
    sel=${selections[$(( (i - 1) % ${#selections[@]} ))]}
    curl -s -o /dev/null -w "%{time_total} %{size_download}\n" "127.0.0.1:$port/flamegraph/wide-20k.$ext?title=r$i&$sel"
  done | python3 -c 'import sys, statistics as st; r = [l.split() for l in sys.stdin]; print("%-7s %8.3f  %d" % (sys.argv[1], st.median(float(t) for t, _ in r), st.median(int(b) for _, b in r)))' "$ext"
done
curl -s "127.0.0.1:$port/flamegraph/wide-20k.tree" | python3 -c 'import json,sys; a=json.load(sys.stdin); print("tree: %d nodes (%d shown), %d functions, %d levels" % (a["tree"]["nodes"], a["tree"]["shown"], a["functions_count"], len(a["tree"]["levels"])))'
whole=$(curl -s "127.0.0.1:$port/flamegraph/wide-20k.tree" | wc -c)
gz=$(curl -s "127.0.0.1:$port/flamegraph/wide-20k.tree" | gzip -6 | wc -c)
echo "the whole app's .tree: $whole bytes, $gz with gzip -6"
