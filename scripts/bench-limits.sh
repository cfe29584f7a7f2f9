#!/usr/bin/env bash
# What the limits cost the hot path, in instructions: the release binary
# under valgrind's callgrind, limits off (every count, rate and timeout 0)
# and on (the defaults, the per-user rate set above what this sends), each
# serving N appends and N session reads (scripts/bench-limits.py, one
# keep-alive connection) and, apart, none; per (append + read) pair, the
# instructions of the N run less the idle run. The process's background
# threads (the WAL checkpoint every 100 ms) make single runs vary by about
# 2 %: RUNS runs of each, alternating, and the medians.
#
#   scripts/bench-limits.sh          # N=1000, RUNS=5
#   N=2000 RUNS=7 BIN=/path/to/other/chat-sessions scripts/bench-limits.sh
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000}
RUNS=${RUNS:-5}
command -v valgrind >/dev/null || { echo "installing valgrind"; apt-get install -y -qq valgrind >/dev/null; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet
  BIN=target/release/chat-sessions
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# Instructions of one run: mode (on|off), requests (pairs).
run() {
  local mode=$1 n=$2 data port=$((7500 + RANDOM % 400))
  data=$(mktemp -d -p "$OUT")
  local env=(USER_WRITE_RATE=1000000000 USER_WRITE_BURST=1000000000)
  if [ "$mode" = off ]; then
    env=(MAX_REQUESTS_IN_FLIGHT=0 MAX_IMPORTS_IN_FLIGHT=0 MAX_EXPORTS_IN_FLIGHT=0
      MAX_ERASES_IN_FLIGHT=0 USER_WRITE_RATE=0 HEADER_READ_TIMEOUT_SECONDS=0
      BODY_READ_TIMEOUT_SECONDS=0)
  fi
  env "${env[@]}" DATA_DIR="$data" PORT=$port RUST_LOG=warn SQLITE_SYNCHRONOUS=normal \
    valgrind --tool=callgrind --callgrind-out-file="$data/cg.out" "$BIN" serve 2>/dev/null &
  local vg=$!
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
  python3 scripts/bench-limits.py "$port" "$n" >/dev/null
  kill -TERM $vg; wait $vg || true
  awk '/^summary:/ {print $2}' "$data/cg.out"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A idle busy
for mode in off on; do idle[$mode]=$(run "$mode" 0); done
for _ in $(seq 1 "$RUNS"); do
  for mode in off on; do busy[$mode]+="$(run "$mode" "$N") "; done
done
for mode in off on; do
  m=$(echo "${busy[$mode]}" | tr ' ' '\n' | grep . | median)
  per=$(( (m - ${idle[$mode]}) / N ))
  echo "$mode: idle ${idle[$mode]} Ir, median of $RUNS runs $m Ir, per append+read $per Ir (runs: ${busy[$mode]})"
  eval "per_$mode=$per"
done
awk -v on="$per_on" -v off="$per_off" 'BEGIN {printf "limits on / off: %.3f\n", on / off}'
