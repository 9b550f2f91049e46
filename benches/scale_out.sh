#!/usr/bin/env bash
# Scale-out on one machine (docs/scale-out.md): moto's S3 server, stackd nodes sharing it.
#
#   1. /write on the realistic mix (wrk, 32 connections, DURATION s, twice each, alternated) to
#      a node with --object-store and to one without: what the outbox costs on the hot path;
#   2. what that node then writes: segments, bytes, and what one upload takes;
#   3. a cold node: started empty once the segments are there, how long until it answers with
#      every count (it reads and adds every other node's segments);
#   4. a day of one 50-executor app (benches/day.py) written to one node and compacted: 24 h
#      queries on the writer, a warm and a cold node, object-store requests per query, per idle
#      round and for the cold node's catch-up, and each compaction pass.
#
#   benches/scale_out.sh            # DURATION=10
#   DURATION=20 benches/scale_out.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
command -v moto_server >/dev/null || python3 -m pip install -q 'moto[server]==5.2.5'
command -v wrk >/dev/null || { echo "wrk is missing (apt install wrk)" >&2; exit 1; }
cargo build --release --locked --bins >/dev/null
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

moto_server -H 127.0.0.1 -p 48500 >"$work/moto.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/48500) 2>/dev/null && break; sleep 0.1; done
export AWS_ENDPOINT_URL=http://127.0.0.1:48500 AWS_ACCESS_KEY_ID=stackd AWS_SECRET_ACCESS_KEY=stackd-secret AWS_REGION=us-east-1
python3 -c "
import boto3
boto3.client('s3', endpoint_url='http://127.0.0.1:48500', aws_access_key_id='stackd', aws_secret_access_key='stackd-secret', region_name='us-east-1').create_bucket(Bucket='stackd-bench')"

"$bin/stackd-load" --print-bodies "$work/mix" --fixture spark --lines 35 --app bench >/dev/null
node() { # name port [extra args]
  local name=$1 port=$2; shift 2
  "$bin/stackd" --statsd-addr "127.0.0.1:$((port + 1))" --http-addr "127.0.0.1:$port" --data-dir "$work/$name" --log "${LOG:-warn}" \
    --prefix-labels SKIP.app.executor "$@" &
  pids+=("$!")
  wait_http "http://127.0.0.1:$port/ping"
}
wrk_rate() { BODIES="$work/mix/index.txt" wrk -t1 -c32 -d"${DURATION}s" -s benches/mix.lua "http://127.0.0.1:$1" | tail -n 1; }
samples() { curl -s "http://127.0.0.1:$1/metrics" | python3 -c "import sys; print(int(sum(float(l.split()[-1]) for l in sys.stdin if l.startswith('stackd_samples_total{app=\"bench-mix-'))))"; }
total_of() { # port app-prefix: the totals of a node's apps whose names start with it
  curl -s "http://127.0.0.1:$1/apps" | python3 -c "import json,sys; print(sum(a['total_samples'] for a in json.load(sys.stdin) if a['name'].startswith('$2')))"
}
metric() { # port series: its value on a node
  curl -s "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1==s {print $2}'
}
objects_under() { # what prefix: the objects below s3://stackd-bench/<prefix>, by kind (.seg, .pack, markers)
  python3 - "$1" "$2" <<'PY'
import boto3, json, sys
what, prefix = sys.argv[1], sys.argv[2]
s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:48500', aws_access_key_id='stackd', aws_secret_access_key='stackd-secret', region_name='us-east-1')
objs = [o for p in s3.get_paginator('list_objects_v2').paginate(Bucket='stackd-bench', Prefix=prefix) for o in p.get('Contents', [])]
kinds = {}
for o in objs:
    k = o['Key'].rsplit('.', 1)[-1] if '.' in o['Key'] else 'marker'
    n, b = kinds.get(k, (0, 0))
    kinds[k] = (n + 1, b + o['Size'])
print(json.dumps({"what": what, "objects": len(objs), "bytes": sum(o['Size'] for o in objs), "largest": max((o['Size'] for o in objs), default=0),
                  "by_kind": {k: {"objects": n, "bytes": b} for k, (n, b) in kinds.items()}}))
PY
}

# 1. The hot path with and without the outbox.
node plain 48510
node shared 48520 --object-store s3://stackd-bench/c --node-id n1 --segment-interval 10s
# Alternated (plain, shared, shared, plain): the machine's drift falls on both.
for order in "48510 48520" "48520 48510"; do
  for port in $order; do
    echo "{\"what\":\"write_mix_32\",\"object_store\":$([ "$port" = 48520 ] && echo true || echo false),\"wrk\":$(wrk_rate "$port")}"
  done
done
sent=$(samples 48520)

# 2. What n1 wrote, once its last segment is up.
for _ in $(seq 300); do
  [ "$(metric 48520 stackd_outbox_backlog)" = 0 ] && break
  sleep 0.1
done
sleep 11
objects_under segments c/segments/
echo "{\"what\":\"uploaded\",\"samples_sent_to_n1\":$sent,\"segments_total\":\"$(curl -s http://127.0.0.1:48520/metrics | grep '^stackd_segments_total{outcome="uploaded"}' | awk '{print $2}')\"}"

# 3. A cold node: how long until it has every count.
start=$(date +%s.%N)
node cold 48530 --object-store s3://stackd-bench/c --node-id n2 --segment-interval 1s
for _ in $(seq 1200); do
  [ "$(total_of 48530 bench-mix-)" = "$sent" ] && break
  sleep 0.1
done
end=$(date +%s.%N)
echo "{\"what\":\"cold_node\",\"samples\":$(total_of 48530 bench-mix-),\"expected\":$sent,\"seconds_to_every_count\":$(python3 -c "print(round($end - $start, 2))")}"

# 4. A day of one 50-executor app (benches/day.py: 1,440 one-minute buckets, 10 executors a
#    minute, 35 real Spark stacks a body), written to n3 and compacted (--pack-segments 10); n4
#    warm all along; then a 24 h query on each, and a cold node n5: how long until it has the
#    day, what it read from the object store, and its queries.
"$bin/stackd-load" --print-bodies "$work/day" --fixture spark --lines 35 --app day --executors 50 --apps 1 --windows 5 --late 60 >/dev/null
LOG=info node n3 48540 --object-store s3://stackd-bench/day --node-id n3 --segment-interval 1s --pack-segments 10 2>"$work/n3.log"
LOG=info node n4 48550 --object-store s3://stackd-bench/day --node-id n4 --segment-interval 1s --pack-segments 10 2>"$work/n4.log"
echo "{\"what\":\"day_sent\",\"send\":$(python3 benches/day.py "$work/day" 127.0.0.1:48540)}"
day_sent=$(total_of 48540 day-mix-)
# Until n4 has the day and a compaction pass has packed; then 8 s more for the other window and
# the grace period of the sources (5 intervals).
for _ in $(seq 600); do
  [ "$(total_of 48550 day-mix-)" = "$day_sent" ] && [ "$(grep -c 'compaction: segments merged' "$work/n3.log" "$work/n4.log" | awk -F: '{s+=$2} END {print s}')" -gt 0 ] && break
  sleep 0.2
done
sleep 8
objects_under day_objects day/segments/
grep -h 'compaction: segments merged' "$work/n3.log" "$work/n4.log" | sed -E 's/\x1b\[[0-9;]*m//g' | python3 -c "
import json, re, sys
for line in sys.stdin:
    f = dict(re.findall(r'(\w+)=(\d+)', line))
    print(json.dumps({'what': 'compaction_pass', 'packs': int(f['packs']), 'read_bytes': int(f['read_bytes']), 'written_bytes': int(f['written_bytes']), 'ms': int(f['ms'])}))"
# Query latency: median of 7, after one to warm (curl's total time).
query_ms() { # port path
  for _ in $(seq 8); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1$2"; done | tail -n 7 | sort -n | sed -n 4p | python3 -c "import sys; print(round(float(sys.stdin.read()) * 1000, 1))"
}
first_ms() { curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1$2" | python3 -c "import sys; print(round(float(sys.stdin.read()) * 1000, 1))"; }
for q in "/flamegraph/day-mix-0.folded?from=-25h" "/flamegraph/day-mix-0.svg?from=-25h" "/flamegraph/day-mix-0.svg?from=-25h&executor=7"; do
  for port in 48540 48550; do
    echo "{\"what\":\"day_query\",\"node\":$([ $port = 48540 ] && echo '"writer n3"' || echo '"warm n4"'),\"query\":\"$q\",\"median_ms\":$(query_ms $port "$q")}"
  done
done
# Per query: what a node asks the object store while answering (its counters around 7 queries).
before=$(metric 48550 'stackd_object_store_requests_total{op="get"}')
query_ms 48550 "/flamegraph/day-mix-0.svg?from=-25h" >/dev/null
echo "{\"what\":\"day_query_object_gets\",\"gets_during_8_queries\":$(python3 -c "print(int($(metric 48550 'stackd_object_store_requests_total{op="get"}') - $before))")}"
# A steady round: what n4 asks each --segment-interval with nothing new (10 s).
l0=$(metric 48550 'stackd_object_store_requests_total{op="list"}'); g0=$(metric 48550 'stackd_object_store_requests_total{op="get"}')
sleep 10
echo "{\"what\":\"idle_rounds_10s\",\"lists\":$(python3 -c "print(int($(metric 48550 'stackd_object_store_requests_total{op="list"}') - $l0))"),\"gets\":$(python3 -c "print(int($(metric 48550 'stackd_object_store_requests_total{op="get"}') - $g0))")}"
# The cold node.
start=$(date +%s.%N)
node n5 48560 --object-store s3://stackd-bench/day --node-id n5 --segment-interval 1s --pack-segments 10
for _ in $(seq 1200); do
  [ "$(total_of 48560 day-mix-)" = "$day_sent" ] && break
  sleep 0.05
done
end=$(date +%s.%N)
echo "{\"what\":\"day_cold_node\",\"samples\":$(total_of 48560 day-mix-),\"expected\":$day_sent,\"seconds_to_the_whole_day\":$(python3 -c "print(round($end - $start, 2))"),\"first_svg_ms\":$(first_ms 48560 "/flamegraph/day-mix-0.svg?from=-25h"),\"gets\":$(metric 48560 'stackd_object_store_requests_total{op="get"}'),\"lists\":$(metric 48560 'stackd_object_store_requests_total{op="list"}'),\"bytes_received\":$(metric 48560 'stackd_object_store_bytes_total{direction="received"}')}"
for q in "/flamegraph/day-mix-0.folded?from=-25h" "/flamegraph/day-mix-0.svg?from=-25h" "/flamegraph/day-mix-0.svg?from=-25h&executor=7"; do
  echo "{\"what\":\"day_query\",\"node\":\"cold n5\",\"query\":\"$q\",\"median_ms\":$(query_ms 48560 "$q")}"
done
