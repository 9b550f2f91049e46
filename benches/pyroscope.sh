#!/usr/bin/env bash
# Pyroscope clients' traffic, side by side (BENCHMARKS.md, "Pyroscope ingest"):
#  1. `cargo bench --bench pyroscope`: decode, check and store on one core, in process; it also
#     writes the request bodies to target/pyroscope-bench (16 Spark executors' pprof profiles as
#     pyroscope-io encodes them, their gzip Push requests, the Java agent's multipart JFR).
#  2. Google's reference pprof parser (github.com/google/pprof/profile, Go, from Debian's
#     golang-github-google-pprof-dev) on the same pprof files: benches/pprof_go/main.go.
#  3. Over HTTP: stackd (release) pinned to core 0, wrk on core 1 with 4 connections, for
#     $SECONDS_EACH s: Push requests (application/proto, gzip), then the agent's multipart JFR
#     to /ingest?format=jfr. Every answer must be 2xx and stackd's
#     stackd_pyroscope_requests_total{outcome="stored"} must equal what wrk saw answered.
# Usage: benches/pyroscope.sh   (ROUNDS=3 for medians of three rounds; SECONDS_EACH=10)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-1}
SECONDS_EACH=${SECONDS_EACH:-10}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/google/pprof/profile ] || missing+=(golang-github-google-pprof-dev)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
cargo build --release --quiet
DIR=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

for round in $(seq "$ROUNDS"); do
  echo "== round $round"
  # Criterion's median throughput of each benchmark.
  cargo bench --bench pyroscope 2>/dev/null | tr '\r' '\n' | awk '/^(pprof|push|jfr_multipart)\// {name=$1} /thrpt:/ && name {print name ": " $4 " " $5; name=""}' 
  GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$DIR/gocache" go run benches/pprof_go/main.go -rounds 3

  rm -rf "$DIR/data"; mkdir -p "$DIR/data"
  taskset -c 0 target/release/stackd --http-addr 127.0.0.1:14040 --statsd-addr 127.0.0.1:0 --data-dir "$DIR/data" \
    --retention 3650d --log warn &
  PID=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:14040/health >/dev/null && break; sleep 0.1; done
  run() { # name url content-type gzip bodies...
    local name=$1 path=$2 ctype=$3 gz=$4; shift 4
    local out
    out=$(URL_PATH="$path" CONTENT_TYPE="$ctype" GZIP="$gz" BODIES="$*" taskset -c 1 wrk -t1 -c4 -d"${SECONDS_EACH}s" -s benches/pyroscope.lua http://127.0.0.1:14040 2>&1)
    if echo "$out" | grep -q "Non-2xx"; then echo "$out"; echo "FAIL: $name got answers other than 2xx"; exit 1; fi
    local reqs bytes
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    bytes=$(cat "$@" | wc -c)
    echo "$out" | awk -v n="$name" -v b="$bytes" -v f="$#" '/Requests\/sec/ {printf "%s: %s requests/s, %.1f MB/s of bodies\n", n, $2, $2 * b / f / 1e6}' >&2
    echo "$reqs"
  }
  pushed=$(run push /push.v1.PusherService/Push application/proto 1 target/pyroscope-bench/push-*.bin)
  jfr=$(run jfr_multipart "/ingest?name=spark-job%7Bexecutor%3D1%7D&format=jfr&spyName=javaspy&sampleRate=100" \
    "multipart/form-data; boundary=bench-boundary-1" 0 target/pyroscope-bench/agent-jfr.multipart)
  metrics=$(curl -s http://127.0.0.1:14040/metrics)
  stored_push=$(echo "$metrics" | awk '/^stackd_pyroscope_requests_total\{api="push",format="pprof",outcome="stored"\}/ {print $2}')
  stored_jfr=$(echo "$metrics" | awk '/^stackd_pyroscope_requests_total\{api="ingest",format="jfr",outcome="stored"\}/ {print $2}')
  # wrk counts requests it saw answered; one in flight at its end may be stored and not counted.
  for pair in "push $pushed $stored_push" "jfr $jfr $stored_jfr"; do
    set -- $pair
    if [ "$3" -lt "$2" ] || [ "$3" -gt $(($2 + 4)) ]; then echo "FAIL: $1: wrk saw $2 answered, stackd stored $3"; exit 1; fi
    echo "$1: $2 answered by wrk, $3 stored by stackd"
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
