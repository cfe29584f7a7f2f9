# Sourced by scripts that need the local Cosmos-compatible server
# (tests/cosmos-server) as the Cosmos tests use it:
#
#   WORK=$(mktemp -d); PIDS=()        # the caller's scratch folder and pids
#   source scripts/cosmos-server.sh
#   start_cosmos_server                # installs it if needed, waits, exports
#                                      # COSMOS_ENDPOINT, COSMOS_KEY, COSMOS_SERVER_PID
#
# The caller kills "${PIDS[@]}" on exit; the launcher also exits once the
# `sleep` holding its stdin open is gone.

# The emulator's published well-known key: not a secret.
COSMOS_KEY_LOCAL="C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

start_cosmos_server() {
  [ -f tests/cosmos-server/node_modules/@vercel/cosmosdb-server/package.json ] ||
    npm ci --no-audit --no-fund --prefix tests/cosmos-server >/dev/null
  mkfifo "$WORK/cosmos.in"
  # Keep the launcher's stdin open for the whole run; it exits when it closes.
  sleep infinity > "$WORK/cosmos.in" &
  PIDS+=($!)
  # PORT=0: a free port (the caller's PORT is for its own server).
  PORT=0 node tests/cosmos-server/launcher.js < "$WORK/cosmos.in" > "$WORK/cosmos.out" 2>/dev/null &
  COSMOS_SERVER_PID=$!
  PIDS+=($COSMOS_SERVER_PID)
  for _ in $(seq 1 200); do
    grep -q LISTENING "$WORK/cosmos.out" 2>/dev/null && break
    sleep 0.05
  done
  local port
  port=$(awk '/LISTENING/ {print $2}' "$WORK/cosmos.out")
  [ -n "$port" ] || { echo "the Cosmos test server did not start" >&2; return 1; }
  export COSMOS_ENDPOINT="http://127.0.0.1:$port/" COSMOS_KEY="$COSMOS_KEY_LOCAL" COSMOS_SERVER_PID
}
