#!/usr/bin/env bash
# Memory of concurrent imports: 12 different collapsed-stack documents of about 24 MB each
# (one per executor), posted at once to /import/folded, each to its own app. SHAPE=spark (default): Spark executors' stacks
# (tests/fixtures/jfr/spark.folded, made distinct by the root frame's line), 12,000 lines of about
# 2 KB; SHAPE=short: 1.9 M short lines (five frames, 100,000 distinct stacks). Prints one JSON line per binary: peak
# RSS (VmHWM), RSS once they finished, the wall time, the imports answered 200, and the samples
# stored against those sent.
# Loopback only; every stackd it starts is stopped.
#
#   benches/imports.sh                          # the release build of this tree
#   BINS="old/stackd target/release/stackd" benches/imports.sh   # several binaries, same run
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-12}
if [ -z "${BINS:-}" ]; then
  cargo build --release --locked --bins >/dev/null
  BINS=target/release/stackd
fi
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# One document per import, each its own executor's: spark, the 571 recorded stacks in 21 rounds
# with another root line number each; short, leaf frames of its own; counts 1..7.
python3 - "$work" "${SHAPE:-spark}" "$N" <<'PY'
import sys
work, shape, n_docs = sys.argv[1], sys.argv[2], int(sys.argv[3])
stacks = [l.rsplit(" ", 1)[0] for l in open("tests/fixtures/jfr/spark.folded") if l.strip()]
for d in range(1, n_docs + 1):
    out, size, n = [], 0, 0
    while size < 24_000_000:
        if shape == "short":
            i = n % 100_000
            out.append(f"main;run;work{i % 97};step{i % 1009};e{d}f{i} {1 + (n + d) % 7}\n")
        else:
            s = stacks[(n + d * 97) % len(stacks)]
            root, rest = s.split(";", 1)
            out.append(f"{root.rsplit(':', 1)[0]}:{d * 1000 + n // len(stacks)};{rest} {1 + (n + d) % 7}\n")
        size += len(out[-1])
        n += 1
    open(f"{work}/doc.{d}.folded", "w").write("".join(out))
PY
bytes=$(stat -c %s "$work/doc.1.folded")
sent=$(cat "$work"/doc.*.folded | awk '{s += $NF} END {print s}')
for bin in $BINS; do
  rm -rf "$work/data"
  "$bin" --statsd-addr 127.0.0.1:48625 --http-addr 127.0.0.1:48686 --data-dir "$work/data" --log warn --max-stacks-per-app 200000 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:48686/ping && break; sleep 0.1; done
  start=$(date +%s.%N)
  for i in $(seq "$N"); do
    curl -s -o "$work/answer.$i" -w '%{http_code}\n' --data-binary @"$work/doc.$i.folded" "http://127.0.0.1:48686/import/folded?app=imp$i" > "$work/code.$i" &
  done
  wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
  secs=$(python3 -c "import time; print(round(time.time() - $start, 1))")
  sleep 2
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  ok=$(cat "$work"/code.* | grep -c '^200$' || true)
  stored=$(curl -s http://127.0.0.1:48686/metrics | awk '/^stackd_samples_total\{app="imp/ {s += $2} END {print s + 0}')
  echo "{\"bin\":\"$bin\",\"shape\":\"${SHAPE:-spark}\",\"imports\":$N,\"document_bytes\":$bytes,\"answered_200\":$ok,\"peak_rss_mib\":$((hwm / 1024)),\"rss_after_mib\":$((rss / 1024)),\"seconds\":$secs,\"samples_sent\":$sent,\"samples_stored\":$stored}"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
