#!/usr/bin/env bash
# JFR imports end to end, beside the JDK's own reader, on recordings made of the real fixtures
# (tests/fixtures/jfr: JDK 17 settings=profile, async-profiler 2.9 itimer, wall, alloc, lock)
# one after another, as a recording that many chunks were appended to:
#
#   * stackd: POST /import/jfr of a 200 MB recording to the release binary (one import: one
#     thread decodes and stores), wall time by curl, and stackd's peak RSS (VmHWM) before and
#     after: memory is one chunk at a time, not the file;
#   * the JDK: `jfr print --json` of the sample events (what a script would convert) on a 20 MB
#     recording of the same chunks, wall time.
#
# `cargo bench --bench jfr` compares the decoders in-process with the jfrs crate.
# Usage: benches/jfr.sh   (ROUNDS=3 by default; prints a table, medians)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

(cd "$here" && cargo build --release --quiet --bin stackd)
bin="$here/target/release/stackd"

make_recording() { # bytes path
  local f
  : > "$2"
  while [ "$(stat -c %s "$2")" -lt "$1" ]; do
    for f in jdk-profile ap-itimer ap-wall ap-alloc ap-lock; do cat "$here/tests/fixtures/jfr/$f.jfr" >> "$2"; done
  done
}
make_recording $((200 << 20)) "$work/big.jfr"
make_recording $((20 << 20)) "$work/medium.jfr"
big=$(stat -c %s "$work/big.jfr"); medium=$(stat -c %s "$work/medium.jfr")

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

import_s=(); hwm_kb=(); base_kb=()
for r in $(seq "$rounds"); do
  rm -rf "$work/data"
  "$bin" --data-dir "$work/data" --http-addr 127.0.0.1:48687 --statsd-addr 127.0.0.1:0 --retention 36500d --log warn &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:48687/health >/dev/null && break; sleep 0.1; done
  base_kb+=("$(awk '/VmHWM/ {print $2}' /proc/$pid/status)")
  t=$(curl -sf -o "$work/answer.json" -w '%{time_total}' --data-binary @"$work/big.jfr" "http://127.0.0.1:48687/import/jfr?app=bench$r")
  import_s+=("$t")
  hwm_kb+=("$(awk '/VmHWM/ {print $2}' /proc/$pid/status)")
  python3 -c "import json,sys; a=json.load(open(sys.argv[1])); assert a['chunks'] > 1000 and 'incomplete' not in a, a" "$work/answer.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
events=jdk.ExecutionSample,jdk.NativeMethodSample,jdk.ObjectAllocationSample,jdk.ObjectAllocationInNewTLAB,jdk.ObjectAllocationOutsideTLAB,jdk.JavaMonitorEnter,jdk.ThreadPark
print_s=()
for r in $(seq "$rounds"); do
  s=$(date +%s.%N); jfr print --json --events "$events" "$work/medium.jfr" > /dev/null; e=$(date +%s.%N)
  print_s+=("$(echo "$e - $s" | bc -l)")
done
imp=$(printf '%s\n' "${import_s[@]}" | median); hwm=$(printf '%s\n' "${hwm_kb[@]}" | median); base=$(printf '%s\n' "${base_kb[@]}" | median)
prt=$(printf '%s\n' "${print_s[@]}" | median)
ours=$(echo "$big / 1048576 / $imp" | bc -l); jdk=$(echo "$medium / 1048576 / $prt" | bc -l)
printf '| what | bytes | seconds (median of %d) | MiB/s |\n|---|---|---|---|\n' "$rounds"
printf '| stackd POST /import/jfr (decode + store) | %d | %.2f | %.0f |\n' "$big" "$imp" "$ours"
printf '| jfr print --json (JDK 17) | %d | %.2f | %.1f |\n' "$medium" "$prt" "$jdk"
printf '\nstackd / jfr print: %.1fx. stackd peak RSS: %.0f MiB before the import, %.0f MiB after (a %d MiB recording).\n' \
  "$(echo "$ours / $jdk" | bc -l)" "$(echo "$base / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)" $((big >> 20))
