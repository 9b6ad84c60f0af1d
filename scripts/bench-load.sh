#!/usr/bin/env bash
# Load figures per pairing with fixed settings, so runs compare:
#
#   scripts/bench-load.sh [extra interop bench arguments]
#
# Every client with a load mode against every server, unary and ping-pong,
# 50 workers over 1 connection, 100-byte payloads both ways, 1 s warm-up,
# 5 s window, each server pinned to one CPU (as grpc_bench pins its servers)
# and the clients and ghz on the others; ghz against each server in the same
# run. Prints the throughput, p99 and server-CPU-per-call matrices, then the
# Rust client's unary throughput beside ghz's for each server. Writes
# target/interop/bench/bench.json and bench.html. About 5 minutes.
#
# The figures are not judged: these machines are shared and noisy. The exit
# status is interop bench's (0: every run gave throughput without errors).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/interop/bench
mkdir -p "$out"
cargo build --release --locked -q
set +e
target/release/interop bench \
  --concurrency 50 --connections 1 --warmup-ms 1000 --duration-ms 5000 --payload 100 \
  --server-cpus 1 --json "$out/bench.json" --html "$out/bench.html" "$@"
status=$?
set -e
if [[ -s $out/bench.json ]] && command -v jq >/dev/null 2>&1; then
  echo
  echo "unary, the Rust client beside ghz: calls/s, and the server's CPU per call (µs):"
  jq -r '.ghz[] as $g
    | (.entries[] | select(.load == "unary" and .client == "rust" and .server == $g.server)) as $r
    | [$g.server, ($r.qps // 0), ($g.qps // 0), ($r.server_cpu_us_per_call // "-"), ($g.server_cpu_us_per_call // "-")] | @tsv' "$out/bench.json" |
    awk -F'\t' '{ printf "  %-12s rust %10.1f   ghz %10.1f   rust/ghz %.2f   server CPU per call: rust %s, ghz %s\n", $1, $2, $3, ($3 > 0 ? $2 / $3 : 0), $4, $5 }'
fi
echo "reports: $out/bench.json $out/bench.html"
exit "$status"
