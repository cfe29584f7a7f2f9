#!/usr/bin/env bash
# Bytes written to disk per append on the embedded store (SSD wear, and how
# fast appends fill a disk): the release binary on a data directory on disk,
# appends of SIZE bytes (default 600) one after the other, then from WORKERS
# (32) at once, each to a session of its own; /proc/<pid>/io around each run
# (see scripts/bench-writes.py).
#
#   scripts/bench-writes.sh
#   APPENDS=10000 SIZE=3000 scripts/bench-writes.sh
#   BIN=/path/to/other/chat-sessions scripts/bench-writes.sh   # compare builds
set -euo pipefail
cd "$(dirname "$0")/.."

APPENDS=${APPENDS:-3000}
SIZE=${SIZE:-600}
WORKERS=${WORKERS:-32}
PORT=${PORT:-7393}
export SQLITE_SYNCHRONOUS=${SQLITE_SYNCHRONOUS:-full}

if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --quiet
  BIN=target/release/chat-sessions
fi
# Under target/ rather than /tmp, which may be a tmpfs (no disk writes to count).
mkdir -p target
DATA=$(mktemp -d -p target bench-writes.XXXXXX)
trap '{ kill $PID && wait $PID; } 2>/dev/null || true; rm -rf "$DATA"' EXIT

# One user appends as fast as it can: the per-user write rate off.
DATA_DIR=$DATA PORT=$PORT USER_WRITE_RATE=0 RUST_LOG=warn "$BIN" serve &
PID=$!
until curl -fs "http://127.0.0.1:$PORT/" >/dev/null; do sleep 0.01; done
echo "bench-writes: $APPENDS appends of $SIZE bytes; SQLITE_SYNCHRONOUS=$SQLITE_SYNCHRONOUS; filesystem $(stat -f -c %T "$DATA")"
python3 scripts/bench-writes.py --base "http://127.0.0.1:$PORT" --pid "$PID" --data-dir "$DATA" \
  --appends "$APPENDS" --size "$SIZE" --workers "$WORKERS"
