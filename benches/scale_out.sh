#!/usr/bin/env bash
# Scale-out on one machine (docs/scale-out.md): moto's S3 server, stackd nodes sharing it.
#
#   1. /write on the realistic mix (wrk, 32 connections, DURATION s, twice each, alternated) to
#      a node with --object-store and to one without: what the outbox costs on the hot path;
#   2. what that node then writes: segments, bytes, and what one upload takes;
#   3. a cold node: started empty once the segments are there, how long until it answers with
#      every count (it reads and adds every other node's segments).
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
  "$bin/stackd" --statsd-addr "127.0.0.1:$((port + 1))" --http-addr "127.0.0.1:$port" --data-dir "$work/$name" --log warn \
    --prefix-labels SKIP.app.executor "$@" &
  pids+=("$!")
  wait_http "http://127.0.0.1:$port/ping"
}
wrk_rate() { BODIES="$work/mix/index.txt" wrk -t1 -c32 -d"${DURATION}s" -s benches/mix.lua "http://127.0.0.1:$1" | tail -n 1; }
samples() { curl -s "http://127.0.0.1:$1/metrics" | python3 -c "import sys; print(int(sum(float(l.split()[-1]) for l in sys.stdin if l.startswith('stackd_samples_total{app=\"bench-mix-'))))"; }
total_of() { # every app's folded total on a node
  python3 - "$1" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
apps = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/apps"))
print(sum(a["total_samples"] for a in apps if a["name"].startswith("bench-mix-")))
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
  [ "$(curl -s http://127.0.0.1:48520/metrics | awk '$1=="stackd_outbox_backlog" {print $2}')" = 0 ] && break
  sleep 0.1
done
sleep 11
python3 - <<'PY'
import boto3, json
s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:48500', aws_access_key_id='stackd', aws_secret_access_key='stackd-secret', region_name='us-east-1')
objs = [o for p in s3.get_paginator('list_objects_v2').paginate(Bucket='stackd-bench', Prefix='c/segments/') for o in p.get('Contents', [])]
sizes = sorted(o['Size'] for o in objs)
print(json.dumps({"what": "segments", "objects": len(objs), "bytes": sum(sizes), "largest": sizes[-1] if sizes else 0}))
PY
echo "{\"what\":\"uploaded\",\"samples_sent_to_n1\":$sent,\"segments_total\":\"$(curl -s http://127.0.0.1:48520/metrics | grep '^stackd_segments_total{outcome="uploaded"}' | awk '{print $2}')\"}"

# 3. A cold node: how long until it has every count.
start=$(date +%s.%N)
node cold 48530 --object-store s3://stackd-bench/c --node-id n2 --segment-interval 1s
for _ in $(seq 1200); do
  [ "$(total_of 48530)" = "$sent" ] && break
  sleep 0.1
done
end=$(date +%s.%N)
echo "{\"what\":\"cold_node\",\"samples\":$(total_of 48530),\"expected\":$sent,\"seconds_to_every_count\":$(python3 -c "print(round($end - $start, 2))")}"
