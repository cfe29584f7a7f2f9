#!/usr/bin/env bash
# Instructions per request of the release binary, counted by callgrind over
# all its threads (the telemetry's export thread included), for a GET of a
# 50-message session or an append on the embedded store: the count for
# N2 requests minus the count for N1, divided by N2 - N1, so start-up and
# setup cancel out. Repeatable within about 1 % whatever else the machine
# does, which bench.sh's ratios are not on a shared machine.
#
#   scripts/bench-instructions.sh                 # GET, no exporter
#   KIND=post scripts/bench-instructions.sh       # appends
#   OTLP=1 scripts/bench-instructions.sh          # exporting everything to a local sink
#   SERVER_TIMING=off BIN=/other/build scripts/bench-instructions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=${KIND:-get} N1=${N1:-200} N2=${N2:-2200}
command -v valgrind >/dev/null || { echo "installing valgrind"; apt-get install -y -qq valgrind >/dev/null; }
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --locked --quiet
  BIN=target/release/chat-sessions
fi

count() { # requests → total instructions of the server's run
  local n=$1 port data out sink=
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  data=$(mktemp -d) out=$(mktemp -d)
  if [[ "${OTLP:-0}" == 1 ]]; then
    python3 scripts/otlp-sink.py $((port + 1)) >/dev/null 2>&1 & sink=$!
    export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$((port + 1))" OTEL_TRACES_SAMPLER=always_on
  fi
  DATA_DIR=$data PORT=$port RUST_LOG=warn SQLITE_SYNCHRONOUS=normal USER_WRITE_RATE=0 \
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$BIN" serve >/dev/null 2>"$out/valgrind.log" &
  local pid=$!
  until curl -fs "http://127.0.0.1:$port/" >/dev/null; do sleep 0.2; done
  python3 - "$port" "$n" "$KIND" <<'PY'
import http.client, json, sys
port, n, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port)
def call(method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"content-type": "application/json"})
    r = c.getresponse(); data = r.read(); assert r.status < 300, (r.status, data); return data
sid = json.loads(call("POST", "/api/chat/sessions", {"user_id": "bench"}))["id"]
text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt."
for i in range(50):
    call("POST", f"/api/chat/sessions/{sid}/messages?user_id=bench",
         {"content": f"message {i}: {text}", "message_type": "user"})
for i in range(n):
    if kind == "get":
        call("GET", f"/api/chat/sessions/{sid}?user_id=bench")
    else:
        call("POST", f"/api/chat/sessions/{sid}/messages?user_id=bench",
             {"content": "Hello there, a typical message.", "message_type": "user"})
PY
  sleep 1
  kill -INT $pid; wait $pid 2>/dev/null || true
  [[ -n "$sink" ]] && kill $sink
  awk '/^(summary|totals):/ {print $2; exit}' "$out"/cg.*
  rm -rf "$data" "$out"
}

a=$(count "$N1"); b=$(count "$N2")
echo "$KIND: $(( (b - a) / (N2 - N1) )) instructions per request (OTLP=${OTLP:-0}, SERVER_TIMING=${SERVER_TIMING:-on}, $BIN)"
