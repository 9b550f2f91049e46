#!/bin/bash
# Same-run comparison of the parse/ingest benchmarks between a base revision and the working
# tree: both are built, then measured alternately, three rounds each, so that a noisy machine
# affects both alike. Compare the medians of the three rounds.
#
#   benches/same_run.sh <base revision> [criterion filter]
#
# Example: benches/same_run.sh 9af0d87 'statsd/ingest_seen_stacks|line_protocol/stackd_ingest_seen_stacks'
set -euo pipefail
base_rev=${1:?usage: benches/same_run.sh <base revision> [criterion filter]}
filter=${2:-'statsd/ingest_seen_stacks|line_protocol/stackd_ingest_seen_stacks|statsd/parse_and_split'}
here=$(cd "$(dirname "$0")/.." && pwd)
base=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$base" >/dev/null 2>&1 || true' EXIT
git -C "$here" worktree add -f "$base" "$base_rev" -q
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target/same-run}
for tree in "$base" "$here"; do (cd "$tree" && cargo bench --bench parse --no-run -q); done
for round in 1 2 3; do
  for tree in "$base" "$here"; do
    name=$([ "$tree" = "$here" ] && echo change || echo "$base_rev")
    (cd "$tree" && cargo bench --bench parse -q -- --warm-up-time 1 --measurement-time 4 "$filter" 2>&1) |
      awk -v who="$name" -v r="$round" '/^(statsd|line_protocol)\// {bench=$1} /thrpt:  \[[0-9]/ {print who, "round", r, bench, $4, $5}'
  done
done
