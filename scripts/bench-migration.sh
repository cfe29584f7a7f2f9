#!/usr/bin/env bash
# Migration throughput and peak memory: JSONL → embedded store for 100k and
# 1M legacy messages, and 100k into Cosmos DB on the local Cosmos-compatible
# server. Figures, not pass/fail.
#
#   scripts/bench-migration.sh            # SIZES="100000 1000000" COSMOS_SIZE=100000
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"100000 1000000"}
COSMOS_SIZE=${COSMOS_SIZE:-100000}
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release --locked --quiet
BIN=$PWD/target/release/chat-sessions
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

generate() { # count file: sessions of ~10 messages, 5% of them from many users
  python3 - "$1" "$2" <<'PY'
import json, random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(7)
with open(path, "w") as f:
    for i in range(n):
        s = i // 10
        f.write(json.dumps({
            "id": f"m{i:08d}", "session_id": f"s{s:07d}", "user_id": f"u{s % 5000:05d}",
            "content": "A typical chat message of moderate length, about one hundred and twenty bytes long, give or take.",
            "message_type": ("user", "assistant")[i % 2], "metadata": {"n": i % 7},
            "created_at": f"2023-06-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{random.randrange(10**6):06d}Z",
        }) + "\n")
PY
}

measure() { # label count: runs the rest of the line under /usr/bin/time -v
  local label=$1 count=$2; shift 2
  local out="$WORK/time.txt"
  /usr/bin/time -v "$@" >"$WORK/run.txt" 2>"$out" || true
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  awk -v l="$label" -v n="$count" -v s="$secs" -v r="$rss" \
    'BEGIN { printf "%-40s %9d msgs  %7.1f s  %9.0f msgs/s  peak RSS %6.1f MiB\n", l, n, s, n / s, r / 1024 }'
  grep -E "messages:" "$WORK/run.txt" | sed 's/^/    /'
}

for n in $SIZES; do
  generate "$n" "$WORK/legacy-$n.jsonl"
  measure "JSONL -> embedded store" "$n" \
    env DATA_DIR="$WORK/store-$n" RUST_LOG=warn "$BIN" migrate --from-jsonl "$WORK/legacy-$n.jsonl" --run-id bench
done

if [ "$COSMOS_SIZE" -gt 0 ]; then
  [ -f tests/cosmos-server/node_modules/@vercel/cosmosdb-server/package.json ] ||
    npm ci --no-audit --no-fund --prefix tests/cosmos-server >/dev/null
  mkfifo "$WORK/in"; sleep infinity > "$WORK/in" & PIDS+=($!)
  node tests/cosmos-server/launcher.js < "$WORK/in" > "$WORK/cosmos.out" 2>/dev/null & PIDS+=($!)
  until grep -q LISTENING "$WORK/cosmos.out" 2>/dev/null; do sleep 0.05; done
  export COSMOS_ENDPOINT="http://127.0.0.1:$(awk '/LISTENING/ {print $2}' "$WORK/cosmos.out")/"
  export COSMOS_KEY="C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
  RUST_LOG=warn "$BIN" init-cosmos
  [ -f "$WORK/legacy-$COSMOS_SIZE.jsonl" ] || generate "$COSMOS_SIZE" "$WORK/legacy-$COSMOS_SIZE.jsonl"
  measure "JSONL -> Cosmos (local server)" "$COSMOS_SIZE" \
    env RUST_LOG=warn "$BIN" migrate --from-jsonl "$WORK/legacy-$COSMOS_SIZE.jsonl" --run-id bench
fi
