#!/usr/bin/env bash
# Times the warm native matrix (one client process per pairing, pairings in
# parallel) against the same build run with one client process per case.
#
#   scripts/bench-matrix.sh [RUNS]      (default 3 runs of each)
#
# Builds once first (not timed), then prints each run's wall time and the
# median of both modes. Extra arguments after RUNS go to `interop run`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"; shift || true

cargo build --release --locked -q
bin=target/release/interop
echo "building the implementations (not timed)..." >&2
"$bin" run --case empty_unary "$@" >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f", m}'; }

time_mode() {
  local label="$1"; shift
  local times=()
  for i in $(seq "$runs"); do
    local t0 t1 code
    t0=$(date +%s.%N)
    set +e
    "$bin" run --no-build "$@" >"target/bench-$label.txt" 2>&1
    code=$?
    set -e
    t1=$(date +%s.%N)
    local dt
    dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
    times+=("$dt")
    local cells
    cells=$(grep -E '^[0-9]+ cells:' "target/bench-$label.txt" || true)
    printf '%-18s run %d: %6.2f s  exit %d  %s\n' "$label" "$i" "$dt" "$code" "$cells" >&2
  done
  printf '%s\n' "${times[@]}" | median
}

batched=$(time_mode matrix "$@")
per_case=$(time_mode process-per-case --process-per-case "$@")
echo "cores: $(nproc)"
echo "warm matrix, one client process per pairing: median ${batched} s over ${runs} runs"
echo "same matrix, one client process per case:    median ${per_case} s over ${runs} runs"
echo "speed-up: $(awk -v a="$per_case" -v b="$batched" 'BEGIN {printf "%.1f", a / b}')x"
