#!/usr/bin/env bash
# What the explorer's page costs stackd: the `.tree` answer for an app of 20,000 distinct deep
# stacks (the real Spark executor stacks of tests/fixtures/jfr/spark.folded, each with leaves of
# its own), uncached, beside the .svg, .json and .folded renders of the same selection; medians
# of ROUNDS requests, and the answer sizes. The page's own time (first graph drawn, in
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
lines = [l.rsplit(" ", 1) for l in open("tests/fixtures/jfr/spark.folded").read().splitlines()]
bodies = [""] * 4
for i in range(20000):
    s, _ = lines[i % len(lines)]
    bodies[i % 4] += f"{s};com.example.Leaf{i // len(lines)}.work:{i % 97} {1 + i % 7}\n"
for b in bodies:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/import/folded?app=wide-20k", data=b.encode())).read()
PY
echo "format  median_s  bytes  (uncached, $ROUNDS rounds)"
for ext in tree svg json folded; do
  for i in $(seq "$ROUNDS"); do
    # title= differs per request: a new render each time (the .tree ignores it).
    curl -s -o /dev/null -w "%{time_total} %{size_download}\n" "127.0.0.1:$port/flamegraph/wide-20k.$ext?title=r$i"
  done | sort -n | awk -v e="$ext" '{a[NR]=$1; s=$2} END {printf "%-7s %8.3f  %d\n", e, a[int((NR+1)/2)], s}'
done
curl -s "127.0.0.1:$port/flamegraph/wide-20k.tree" | python3 -c 'import json,sys; a=json.load(sys.stdin); print("tree: %d nodes (%d shown), %d functions, %d levels" % (a["tree"]["nodes"], a["tree"]["shown"], a["functions_count"], len(a["tree"]["levels"])))'
