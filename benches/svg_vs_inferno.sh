#!/usr/bin/env bash
# The SVG of an app with 50,000 distinct stacks: stackd (`GET /flamegraph/<app>.svg`, a fresh
# `title` each run so that every request renders) against inferno's own CLI
# (`inferno-flamegraph` 0.12.8, the library version stackd renders with) on the same folded
# stacks with the same options (stackd sets both hash and deterministic colours; the CLI takes
# only one of them: --hash). Medians of RUNS runs of each, wall time and memory: the CLI's
# peak RSS, and how much stackd's peak RSS grew over its RSS before the first render.
#
#   benches/svg_vs_inferno.sh        # RUNS=5
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
command -v inferno-flamegraph >/dev/null || cargo install --locked --quiet inferno --version 0.12.8
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
cargo build --release --locked --bins >/dev/null
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# 50,000 distinct stacks: each fixture stack under 2,174 different pairs of frames.
python3 - "$work/stacks.folded" <<'PY'
import sys
base = [l.rsplit(" ", 1) for l in open("tests/fixtures/jfr/workload.folded").read().splitlines()]
out, n = [], 0
while n < 50_000:
    for stack, count in base:
        frames = stack.split(";")
        frames[1:1] = [f"org.apache.spark.executor.Stage{n % 97}.run:{n % 13}", f"com.example.Job{n}.call:{n % 7}"]
        out.append(f"{';'.join(frames)} {int(count) + n % 5}")
        n += 1
        if n == 50_000:
            break
open(sys.argv[1], "w").write("\n".join(sorted(out)) + "\n")
PY

./target/release/stackd --statsd-addr 127.0.0.1:48525 --http-addr 127.0.0.1:48586 --data-dir "$work/data" --log warn --max-stacks-per-app 100000 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:48586/ping && break; sleep 0.1; done
curl -sf --data-binary @"$work/stacks.folded" 'http://127.0.0.1:48586/import/folded?app=svg50k' >/dev/null
kib() { awk -v k="$2" '$1==k":" {print $2}' "/proc/$1/status"; }
rss_before=$(kib "$pid" VmRSS)

ours=() theirs=()
for run in $(seq "$RUNS"); do
  t=$(/usr/bin/time -f "%e %M" inferno-flamegraph --colors java --hash --countname samples --title svg50k \
      <"$work/stacks.folded" 2>&1 >"$work/inferno.svg" | tail -n 1)
  theirs+=("$t")
  s=$(curl -sf -o "$work/stackd.svg" -w '%{time_total}' "http://127.0.0.1:48586/flamegraph/svg50k.svg?title=svg50k-$run")
  ours+=("$s $(kib "$pid" VmHWM)")
done
# The same request again, unchanged profile: from the render cache, and revalidated (304).
cached=() revalidated=()
url="http://127.0.0.1:48586/flamegraph/svg50k.svg?title=svg50k-1"
etag=$(curl -sf -o /dev/null -D - "$url" | awk -F': ' 'tolower($1)=="etag" {print $2}' | tr -d '\r')
for run in $(seq "$RUNS"); do
  cached+=("$(curl -sf -o /dev/null -w '%{time_total}' "$url")")
  revalidated+=("$(curl -s -o /dev/null -w '%{time_total}' -H "If-None-Match: $etag" "$url")")
done
python3 - "$rss_before" "$(wc -c <"$work/inferno.svg")" "$(wc -c <"$work/stackd.svg")" \
  "$(printf '%s\n' "${cached[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
  "$(printf '%s\n' "${revalidated[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')" \
  "${theirs[@]}" -- "${ours[@]}" <<'PY'
import statistics, sys
rss_before, size_theirs, size_ours = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cached_s, revalidated_s = float(sys.argv[4]), float(sys.argv[5])
rest = sys.argv[6:]
split = rest.index("--")
theirs = [tuple(map(float, r.split())) for r in rest[:split]]
ours = [tuple(map(float, r.split())) for r in rest[split + 1:]]
t_theirs = statistics.median(t for t, _ in theirs)
t_ours = statistics.median(t for t, _ in ours)
print({"runs": len(ours),
       "inferno_cli_s": t_theirs, "inferno_cli_peak_rss_mib": round(statistics.median(m for _, m in theirs) / 1024),
       "stackd_s": t_ours, "stackd_peak_rss_growth_mib": round((max(m for _, m in ours) - rss_before) / 1024),
       "stackd_over_cli_time": round(t_ours / t_theirs, 2), "svg_bytes": {"inferno_cli": size_theirs, "stackd": size_ours},
       "stackd_repeat_cached_ms": round(cached_s * 1000, 2), "stackd_repeat_304_ms": round(revalidated_s * 1000, 2)})
PY
