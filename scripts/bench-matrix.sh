#!/usr/bin/env bash
# Times the warm native matrix, in one run of this script:
#   - 3x3: our three implementations and the 22 cases they had before the
#     official interop binaries and the soak cases took their seats;
#   - default: the whole default matrix (4x4, every case);
#   - process-per-case: the default matrix with one client process per case
#     instead of one per pairing.
#
#   scripts/bench-matrix.sh [RUNS]      (default 3 runs of each)
#
# Builds once first (not timed), then prints each run's wall time, the
# medians, and how the default compares with the 3x3. Extra arguments after
# RUNS go to every `interop run`.
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

ours="go,python,rust"
cases_3x3="greeter_*,empty_unary,large_unary,client_streaming,server_streaming,ping_pong,empty_stream"
cases_3x3+=",custom_metadata,status_code_and_message,special_status_message,unimplemented_*"
cases_3x3+=",cancel_after_*,timeout_on_sleeping_server,*_compressed_*"
small=$(time_mode 3x3 --client "$ours" --server "$ours" --case "$cases_3x3" "$@")
batched=$(time_mode default "$@")
per_case=$(time_mode process-per-case --process-per-case "$@")
echo "cores: $(nproc)"
echo "warm 3x3 (3 implementations, 22 cases, 198 cells): median ${small} s over ${runs} runs"
echo "warm default matrix, one client process per pairing: median ${batched} s over ${runs} runs"
echo "default matrix, one client process per case:         median ${per_case} s over ${runs} runs"
echo "default / 3x3: $(awk -v a="$batched" -v b="$small" 'BEGIN {printf "%.2f", a / b}')x"
echo "per case / per pairing: $(awk -v a="$per_case" -v b="$batched" 'BEGIN {printf "%.1f", a / b}')x"
