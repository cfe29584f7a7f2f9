#!/usr/bin/env bash
# Exporting a whole user: the server's peak memory while it streams
# GET /api/chat/export for one user with MESSAGES messages (one session of
# half of them, the rest in sessions of 100), on the embedded store and on
# Cosmos DB on the local Cosmos-compatible server; and the CLI
# (`chat-sessions export`) doing the same. A smaller user (SMALL messages)
# alongside shows whether memory grows with the history. Figures, not
# pass/fail.
#
#   scripts/bench-export.sh          # MESSAGES=200000 SMALL=20000 STORES="sqlite cosmos"
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${MESSAGES:-200000}
SMALL=${SMALL:-20000}
STORES=${STORES:-"sqlite cosmos"}
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release --locked --quiet
BIN=$PWD/target/release/chat-sessions
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

generate() { # user count file: legacy records, one session of half, the rest by 100
  python3 - "$@" <<'PY'
import json, sys
user, n, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
half = n // 2
with open(path, "w") as f:
    for i in range(n):
        s = "big" if i < half else f"s{(i - half) // 100:05d}"
        f.write(json.dumps({
            "id": f"m{i:08d}", "session_id": f"{user}_{s}", "user_id": user,
            "content": "A typical chat message of moderate length, about one hundred and twenty bytes long, give or take.",
            "message_type": ("user", "assistant")[i % 2], "metadata": {"n": i % 7},
            "created_at": f"2023-06-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000000:06d}Z",
        }) + "\n")
PY
}

kib() { awk -v k="$1" '/^'"$1"':/ {print $2}' "/proc/$2/status"; }

bench_store() { # store
  local store=$1 data="$WORK/data-$1" port pid
  for user in big small; do
    local n=$MESSAGES; [ $user = small ] && n=$SMALL
    [ -f "$WORK/$user.jsonl" ] || generate "$user" "$n" "$WORK/$user.jsonl"
    DATA_DIR="$data" RUST_LOG=warn "$BIN" migrate --from-jsonl "$WORK/$user.jsonl" --run-id "seed-$user" >/dev/null
  done
  port=$(free_port)
  DATA_DIR="$data" PORT=$port RUST_LOG=warn "$BIN" serve >/dev/null 2>&1 &
  pid=$!; PIDS+=($pid)
  until curl -fs "http://127.0.0.1:$port/" >/dev/null; do sleep 0.05; done
  curl -fs "http://127.0.0.1:$port/api/chat/sessions?user_id=big" >/dev/null
  echo "== $store: server RSS after start $(( $(kib VmRSS $pid) / 1024 )) MiB (peak so far $(( $(kib VmHWM $pid) / 1024 )) MiB)"
  for user in small big; do
    local start end bytes lines
    start=$(date +%s.%N)
    bytes=$(curl -fsS "http://127.0.0.1:$port/api/chat/export?user_id=$user" | tee "$WORK/export-$user.ndjson" | wc -c)
    end=$(date +%s.%N)
    lines=$(wc -l < "$WORK/export-$user.ndjson")
    awk -v s="$store" -v u="$user" -v l="$lines" -v b="$bytes" -v t0="$start" -v t1="$end" \
        -v hwm="$(kib VmHWM $pid)" -v rss="$(kib VmRSS $pid)" \
      'BEGIN { printf "GET /api/chat/export %-5s %-6s %8d lines %7.1f MiB %6.1f s  server peak RSS %6.1f MiB (now %6.1f MiB)\n", s, u, l, b / 1048576, t1 - t0, hwm / 1024, rss / 1024 }'
  done
  kill $pid; wait $pid 2>/dev/null || true
  /usr/bin/time -v env DATA_DIR="$data" RUST_LOG=warn "$BIN" export --user big --out "$WORK/cli.ndjson" 2>"$WORK/time.txt" || true
  awk -F': ' -v s="$store" '/Maximum resident set size/ { printf "chat-sessions export --user big (%s): peak RSS %6.1f MiB\n", s, $2 / 1024 }' "$WORK/time.txt"
  cmp -s "$WORK/cli.ndjson" "$WORK/export-big.ndjson" && echo "    (the CLI wrote the same bytes as the endpoint)"
}

for store in $STORES; do
  if [ "$store" = cosmos ]; then
    [ -f tests/cosmos-server/node_modules/@vercel/cosmosdb-server/package.json ] ||
      npm ci --no-audit --no-fund --prefix tests/cosmos-server >/dev/null
    mkfifo "$WORK/in"; sleep infinity > "$WORK/in" & PIDS+=($!)
    node tests/cosmos-server/launcher.js < "$WORK/in" > "$WORK/cosmos.out" 2>/dev/null & PIDS+=($!)
    until grep -q LISTENING "$WORK/cosmos.out" 2>/dev/null; do sleep 0.05; done
    export COSMOS_ENDPOINT="http://127.0.0.1:$(awk '/LISTENING/ {print $2}' "$WORK/cosmos.out")/"
    export COSMOS_KEY="C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
    RUST_LOG=warn "$BIN" init-cosmos
  fi
  bench_store "$store"
done
