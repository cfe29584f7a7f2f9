#!/usr/bin/env bash
# Import throughput and peak memory: a generated export of this service
# (NDJSON) and a generated ChatGPT conversations.json, each about MIB MiB,
# imported with the CLI into the embedded store (first time, and again:
# nothing to add), posted to a running server (its peak RSS), and a smaller
# one into Cosmos DB on the local Cosmos-compatible server. Figures, not
# pass/fail.
#
#   scripts/bench-import.sh            # MIB=60 COSMOS_MIB=8
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${MIB:-60}
COSMOS_MIB=${COSMOS_MIB:-8}
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
cargo build --release --locked --quiet
BIN=$PWD/target/release/chat-sessions
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

generate() { # format MiB file: sessions of 100 messages of ~300 bytes
  python3 - "$1" "$2" "$3" <<'PY'
import json, sys
fmt, mib, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
text = "Ein typischer Absatz einer Unterhaltung, mit Umlauten (äöü) und etwas Länge, damit er nach echtem Chat aussieht. " * 2
limit = int(mib * 1024 * 1024)
t0 = 1700000000
with open(path, "w", encoding="utf-8") as f:
    if fmt == "export":
        s = 0
        while f.tell() < limit:
            sid = f"session_{s:06d}"
            f.write(json.dumps({"type": "session", "id": sid, "user_id": "someone", "session_name": f"Chat {s}",
                "is_active": s % 5 != 0, "archived_at": None, "context": {"n": s}, "message_count": 100,
                "last_message_at": None, "created_at": "2023-11-14T22:13:20.000000Z",
                "updated_at": "2023-11-15T00:00:00.000000Z"}, ensure_ascii=False) + "\n")
            for m in range(100):
                f.write(json.dumps({"type": "message", "session_id": sid, "id": f"msg_{m:04d}",
                    "content": f"{m}: {text}", "message_type": ("user", "assistant")[m % 2],
                    "user_id": "someone", "metadata": {"m": m},
                    "created_at": f"2023-11-14T22:{13 + m // 60:02d}:{m % 60:02d}.000000Z"},
                    ensure_ascii=False) + "\n")
            s += 1
    else:
        f.write("[")
        c = 0
        while f.tell() < limit:
            mapping = {"root": {"id": "root", "message": None, "parent": None, "children": ["n0"]}}
            for m in range(100):
                nid = f"n{m}"
                mapping[nid] = {"id": nid, "parent": "root" if m == 0 else f"n{m - 1}",
                    "children": [f"n{m + 1}"] if m < 99 else [],
                    "message": {"id": nid, "author": {"role": ("user", "assistant")[m % 2], "name": None, "metadata": {}},
                        "create_time": t0 + c * 1000 + m, "update_time": None,
                        "content": {"content_type": "text", "parts": [f"{m}: {text}"]},
                        "status": "finished_successfully", "end_turn": True, "weight": 1.0,
                        "metadata": {"model_slug": "gpt-4o"}, "recipient": "all", "channel": None}}
            f.write(("," if c else "") + json.dumps({"title": f"Chat {c}", "create_time": t0 + c * 1000,
                "update_time": t0 + c * 1000 + 99, "mapping": mapping, "current_node": "n99",
                "conversation_id": f"conv-{c:06d}", "id": f"conv-{c:06d}", "is_archived": False},
                ensure_ascii=False))
            c += 1
        f.write("]")
PY
}

measure() { # label file: runs the rest of the line under /usr/bin/time -v
  local label=$1 file=$2; shift 2
  local out="$WORK/time.txt"
  /usr/bin/time -v "$@" >"$WORK/run.txt" 2>"$out" || true
  local secs rss size added
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  size=$(stat -c %s "$file")
  added=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["messages_added"] + r["messages_skipped"])' "$WORK/run.txt")
  awk -v l="$label" -v n="$added" -v s="$secs" -v r="$rss" -v b="$size" \
    'BEGIN { printf "%-44s %5.1f MiB %8d msgs %6.1f s %8.0f msgs/s  peak RSS %6.1f MiB\n", l, b / 1048576, n, s, n / s, r / 1024 }'
}

for format in export chatgpt; do
  generate "$format" "$MIB" "$WORK/$format.json"
  measure "$format: CLI -> embedded store" "$WORK/$format.json" \
    env DATA_DIR="$WORK/store-$format" RUST_LOG=warn "$BIN" import --user bench "$WORK/$format.json"
  measure "$format: CLI again (nothing to add)" "$WORK/$format.json" \
    env DATA_DIR="$WORK/store-$format" RUST_LOG=warn "$BIN" import --user bench "$WORK/$format.json"
done

# The server: POST the export to a running binary, its peak RSS after.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATA_DIR="$WORK/store-http" RUST_LOG=warn "$BIN" serve --port "$PORT" & SERVER=$!; PIDS+=($SERVER)
until curl -sf "http://127.0.0.1:$PORT/" >/dev/null; do sleep 0.05; done
idle=$(awk '/VmRSS/ {print $2}' "/proc/$SERVER/status")
for format in export chatgpt; do
  start=$(date +%s.%N)
  curl -sf -H 'Content-Type: application/json' --data-binary @"$WORK/$format.json" \
    "http://127.0.0.1:$PORT/api/chat/import?user_id=http_$format" >"$WORK/http.txt"
  end=$(date +%s.%N)
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
  awk -v f="$format" -v s="$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')" -v i="$idle" -v h="$hwm" -v b="$(stat -c %s "$WORK/$format.json")" \
    'BEGIN { printf "%-44s %5.1f MiB %6.1f s  server RSS idle %5.1f MiB, peak so far %6.1f MiB\n", f ": POST /api/chat/import", b / 1048576, s, i / 1024, h / 1024 }'
  sed 's/^/    /' "$WORK/http.txt"; echo
done
kill "$SERVER"

if [ "$COSMOS_MIB" != 0 ]; then
  [ -f tests/cosmos-server/node_modules/@vercel/cosmosdb-server/package.json ] ||
    npm ci --no-audit --no-fund --prefix tests/cosmos-server >/dev/null
  mkfifo "$WORK/in"; sleep infinity > "$WORK/in" & PIDS+=($!)
  node tests/cosmos-server/launcher.js < "$WORK/in" > "$WORK/cosmos.out" 2>/dev/null & PIDS+=($!)
  until grep -q LISTENING "$WORK/cosmos.out" 2>/dev/null; do sleep 0.05; done
  export COSMOS_ENDPOINT="http://127.0.0.1:$(awk '/LISTENING/ {print $2}' "$WORK/cosmos.out")/"
  export COSMOS_KEY="C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
  RUST_LOG=warn "$BIN" init-cosmos
  generate export "$COSMOS_MIB" "$WORK/cosmos.json"
  measure "export: CLI -> Cosmos (local server)" "$WORK/cosmos.json" \
    env RUST_LOG=warn "$BIN" import --user bench "$WORK/cosmos.json"
  measure "export: CLI -> Cosmos again (nothing to add)" "$WORK/cosmos.json" \
    env RUST_LOG=warn "$BIN" import --user bench "$WORK/cosmos.json"
fi
