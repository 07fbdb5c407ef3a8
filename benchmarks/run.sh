#!/usr/bin/env bash
# The full benchmark: RUNS runs of `hivebus bench` (10,000 agents), then the median of each
# figure. On a shared or small machine single runs are noisy: read the medians.
#
#   benchmarks/run.sh [OUTPUT_DIR]        RUNS=3 (default), AGENTS=10000, QUICK=1 for --quick
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-benchmarks/results/$(date -u +%Y%m%dT%H%M%SZ)}"
runs="${RUNS:-3}"
args=()
if [[ -n "${AGENTS:-}" ]]; then args+=(--agents "$AGENTS"); fi
if [[ -n "${QUICK:-}" ]]; then args+=(--quick); fi

mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  echo "== run $i of $runs" >&2
  uv run hivebus bench "${args[@]}" --output "$out/run-$i.json" | tee "$out/run-$i.txt"
done
echo "== medians of $runs runs" >&2
uv run python -m hivebus_bench.combine "$out"/run-*.json --output "$out/median.json" \
  | tee "$out/median.txt"
echo "reports in $out" >&2
