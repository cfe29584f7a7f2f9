#!/usr/bin/env bash
# Fuzzes the running server with schemathesis against openapi.json: every
# operation, examples + coverage + fuzzing + stateful phases, every check
# (no 5xx, responses match the schema, negative data rejected, valid data
# accepted, …). Bounded: MAX_EXAMPLES per operation (default 100).
#
#   scripts/fuzz.sh                 # the embedded store, then Cosmos DB on the
#                                   # local Cosmos-compatible server
#   STORES=sqlite scripts/fuzz.sh   # only one of them (sqlite | cosmos)
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

STORES=${STORES:-sqlite cosmos}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# The local Cosmos-compatible server, as the Cosmos tests use it.
source scripts/cosmos-server.sh
start_cosmos() {
  start_cosmos_server
  export COSMOS_DATABASE=fuzz
  "$BIN" init-cosmos >/dev/null
}

fuzz() { # store
  local store=$1 port log status=0
  port=$(free_port)
  log="$WORK/server-$store.log"
  echo "== schemathesis on the $store store"
  # The fuzzer is one user writing as fast as it can: the per-user write
  # rate (tests/it/limits.rs tests it) would answer most of its writes 429.
  DATA_DIR="$WORK/store-$store" PORT=$port SQLITE_SYNCHRONOUS=normal USER_WRITE_RATE=0 RUST_LOG=warn \
    "$BIN" serve >"$log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  # Readiness, not just the probe: with Cosmos DB the server answers at
  # once but connects in the background (503 until then).
  for _ in $(seq 1 400); do
    curl -fs "http://127.0.0.1:$port/api/health/ready" >/dev/null && break
    sleep 0.05
  done
  "$VENV/bin/st" run openapi.json \
    --url "http://127.0.0.1:$port" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --seed 1 \
    --no-color || status=$?
  if ! kill -0 $pid 2>/dev/null; then
    echo "fuzz: the server died during the run"; cat "$log"; return 1
  fi
  if grep -q "panicked" "$log"; then
    echo "fuzz: the server panicked"; cat "$log"; return 1
  fi
  kill $pid 2>/dev/null || true
  return $status
}

overall=0
for store in $STORES; do
  case $store in
    sqlite) (unset COSMOS_ENDPOINT; fuzz sqlite) || overall=1 ;;
    cosmos) start_cosmos; fuzz cosmos || overall=1 ;;
    *) echo "fuzz: unknown store $store"; exit 2 ;;
  esac
done
exit $overall
