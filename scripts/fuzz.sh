#!/usr/bin/env bash
# Fuzzes the running server with schemathesis against openapi.json: every
# operation, examples + coverage + fuzzing + stateful phases, every check
# (no 5xx, responses match the schema, negative data rejected, valid data
# accepted, …). Bounded: MAX_EXAMPLES per operation (default 100).
#
#   scripts/fuzz.sh                 # against the embedded store
#   BIN=target/release/chat-sessions scripts/fuzz.sh
#
# Per-operation allowances live in schemathesis.toml, with their reasons.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${MAX_EXAMPLES:-100}
BIN=${BIN:-target/debug/chat-sessions}
VENV=${FUZZ_VENV:-target/fuzz-venv}

if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
[ -x "$BIN" ] || cargo build --locked --quiet --bin chat-sessions

DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SERVER_LOG="$DATA/server.log"
DATA_DIR="$DATA/store" PORT=$PORT SQLITE_SYNCHRONOUS=normal RUST_LOG=warn "$BIN" serve >"$SERVER_LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$DATA"' EXIT
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$PORT/" >/dev/null && break
  sleep 0.05
done

status=0
"$VENV/bin/st" run openapi.json \
  --url "http://127.0.0.1:$PORT" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --seed 1 \
  --no-color || status=$?

if ! kill -0 $PID 2>/dev/null; then
  echo "fuzz: the server died during the run"; cat "$SERVER_LOG"; exit 1
fi
if grep -q "panicked" "$SERVER_LOG"; then
  echo "fuzz: the server panicked"; cat "$SERVER_LOG"; exit 1
fi
exit $status
