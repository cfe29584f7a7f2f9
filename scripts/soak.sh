#!/usr/bin/env bash
# Soak: a steady mixed load (reads, appends, lists, new sessions; see
# scripts/soak.py) against the release binary for DURATION seconds, sampling
# p99 and the server's resident memory every INTERVAL seconds. Not part of CI.
#
#   scripts/soak.sh                                  # embedded store, 10 minutes
#   STORE=cosmos scripts/soak.sh                     # Cosmos DB on the local server
#   DURATION=60 RATE=400 WORKERS=16 scripts/soak.sh  # shorter, harder
#
# Prints one line per interval and a summary (RSS after warm-up and at the
# end, p99 over time, errors); CSV=file also writes the samples. Exits 1 on
# any error answer.
set -euo pipefail
cd "$(dirname "$0")/.."

STORE=${STORE:-sqlite}
DURATION=${DURATION:-600}
INTERVAL=${INTERVAL:-5}
WARMUP=${WARMUP:-60}
RATE=${RATE:-200}
WORKERS=${WORKERS:-8}
PORT=${PORT:-7392}
export SQLITE_SYNCHRONOUS=${SQLITE_SYNCHRONOUS:-full}

cargo build --release --locked --quiet
BIN=target/release/chat-sessions
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

RSS_PIDS=()
case $STORE in
  sqlite) unset COSMOS_ENDPOINT ;;
  cosmos)
    source scripts/cosmos-server.sh
    start_cosmos_server
    export COSMOS_DATABASE=soak
    "$BIN" init-cosmos >/dev/null
    RSS_PIDS+=(--pid "cosmos-server=$COSMOS_SERVER_PID")
    ;;
  *) echo "soak: unknown STORE $STORE (sqlite | cosmos)"; exit 2 ;;
esac

DATA_DIR="$WORK/data" PORT=$PORT RUST_LOG=warn "$BIN" serve > "$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
until curl -fs "http://127.0.0.1:$PORT/" >/dev/null; do
  kill -0 $SERVER 2>/dev/null || { echo "soak: the server did not start"; cat "$WORK/server.log"; exit 1; }
  sleep 0.05
done

echo "soak: $STORE store, ${DURATION}s, $RATE req/s from $WORKERS workers, samples every ${INTERVAL}s; SQLITE_SYNCHRONOUS=$SQLITE_SYNCHRONOUS; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
python3 scripts/soak.py --base "http://127.0.0.1:$PORT" --pid "server=$SERVER" "${RSS_PIDS[@]}" \
  --duration "$DURATION" --interval "$INTERVAL" --warmup "$WARMUP" --rate "$RATE" \
  --workers "$WORKERS" ${CSV:+--csv "$CSV"} || status=$?
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
if ! kill -0 $SERVER 2>/dev/null; then
  echo "soak: the server died"; cat "$WORK/server.log"; exit 1
fi
if grep -q . "$WORK/server.log"; then
  echo "server log (warnings and errors):"; tail -20 "$WORK/server.log"
fi
exit $status
