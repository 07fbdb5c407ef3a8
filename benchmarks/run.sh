#!/usr/bin/env bash
# The full benchmark: RUNS runs of `hivebus bench` (10,000 agents), then the median of each
# figure. On a shared or small machine single runs are noisy: read the medians.
#
#   benchmarks/run.sh [OUTPUT_DIR]        RUNS=3 (default), AGENTS=10000, QUICK=1 for --quick
#
# PROFILE=1 (or auto, py-spy, cprofile) adds one profiled run after the others, into
# OUTPUT_DIR/profile (flame graphs, or pstats and top functions, per core); it is kept out of
# the medians, since a profiler slows the core it watches. py-spy is taken from PyPI for it.
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
if [[ -n "${PROFILE:-}" ]]; then
  profiler="${PROFILE}"
  if [[ "$profiler" == 1 ]]; then profiler=auto; fi
  echo "== a profiled run ($profiler), not in the medians" >&2
  mkdir -p "$out/profile"
  with=()
  if [[ "$profiler" != cprofile ]]; then with=(--with py-spy); fi
  uv run "${with[@]}" hivebus bench "${args[@]}" --profile "$out/profile" \
    --profiler "$profiler" --output "$out/profile/run.json" > "$out/profile/run.txt"
fi
echo "reports in $out" >&2
