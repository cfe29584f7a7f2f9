#!/usr/bin/env bash
# HTTP benchmark of the release binary on the embedded store, loaded by wrk
# from a second process on loopback (appends to one session, and spread
# round robin over 200 users' sessions). Prints req/s and p99 per scenario, the
# ratio to an in-memory ceiling route of the same server, the time from
# process start to the first 200 on `/`, and the binary's size. Under each
# scenario: the CPU time per request of every server thread and of wrk, and
# the rate that total would allow on all the machine's cores.
#
#   scripts/bench.sh            # 10 s per scenario, 2 threads, 32 connections
#   DURATION=30s CONNS=64 scripts/bench.sh
#   SQLITE_SYNCHRONOUS=normal scripts/bench.sh
#   OTLP=1 scripts/bench.sh     # exporting every span, metric and log to a
#                               # local OTLP sink (scripts/otlp-sink.py)
#   BIN=/path/to/other/chat-sessions scripts/bench.sh   # another build, as it is
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-7391}
export SQLITE_SYNCHRONOUS=${SQLITE_SYNCHRONOUS:-full}
# The bench's clients are one user each scenario: every limit stays on, the
# per-user write rate above what wrk sends (USER_WRITE_RATE=20 is the default).
export USER_WRITE_RATE=${USER_WRITE_RATE:-1000000} USER_WRITE_BURST=${USER_WRITE_BURST:-1000000}

command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
if [[ -z "${BIN:-}" ]]; then
  cargo build --release --locked --quiet
  BIN=target/release/chat-sessions
fi
DATA=$(mktemp -d)
WORK=$(mktemp -d)
SINK=
# The server is waited for before its directory goes: it would log the
# store's file gone while it shuts down.
trap '{ kill $PID && wait $PID; } 2>/dev/null || true; [[ -n "$SINK" ]] && kill $SINK 2>/dev/null; rm -rf "$DATA" "$WORK"' EXIT
if [[ "${OTLP:-0}" == 1 ]]; then
  python3 scripts/otlp-sink.py $((PORT + 1)) &
  SINK=$!
  export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$((PORT + 1))" OTEL_TRACES_SAMPLER=always_on
  echo "exporting to a local OTLP sink at $OTEL_EXPORTER_OTLP_ENDPOINT, every trace"
fi

start_ns=$(date +%s%N)
BENCH_ROUTES=1 DATA_DIR=$DATA PORT=$PORT RUST_LOG=warn "$BIN" serve &
PID=$!
until curl -fs "http://127.0.0.1:$PORT/" >/dev/null; do sleep 0.001; done
ready_ns=$(date +%s%N)
BASE="http://127.0.0.1:$PORT"

json() { curl -fs -H 'content-type: application/json' "$@"; }
# A 50-message session like a real chat: alternating turns, ~200-byte answers.
SID=$(json -X POST "$BASE/api/chat/sessions" -d '{"user_id":"bench","session_name":"Bench"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
for i in $(seq 1 50); do
  type=$([ $((i % 2)) -eq 1 ] && echo user || echo assistant)
  json -X POST "$BASE/api/chat/sessions/$SID/messages?user_id=bench" \
    -d "{\"content\":\"message $i: Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.\",\"message_type\":\"$type\",\"metadata\":{\"n\":$i}}" >/dev/null
done
# 100 sessions for the listing.
for i in $(seq 1 100); do
  json -X POST "$BASE/api/chat/sessions" -d "{\"user_id\":\"lister\",\"session_name\":\"Session $i\",\"context\":{\"i\":$i}}" >/dev/null
done
POST_SID=$(json -X POST "$BASE/api/chat/sessions" -d '{"user_id":"poster"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
# 200 users with a session each, for appends spread over many sessions.
{
  echo 'paths = {'
  for u in $(seq 1 200); do
    sid=$(json -X POST "$BASE/api/chat/sessions" -d "{\"user_id\":\"writer$u\"}" | sed -E 's/.*"id":"([^"]+)".*/\1/')
    echo "  \"/api/chat/sessions/$sid/messages?user_id=writer$u\","
  done
  echo '}'
} > "$WORK/many.lua"

# Sessions for the context read: 200 and 10,000 messages of ~60 tokens
# each, imported in one request each (scripts/context-session.py).
python3 scripts/context-session.py ctx200 200 > "$WORK/ctx200.ndjson"
python3 scripts/context-session.py ctx10k 10000 > "$WORK/ctx10k.ndjson"
for f in ctx200 ctx10k; do
  curl -fs -H 'content-type: application/x-ndjson' --data-binary @"$WORK/$f.ndjson" \
    "$BASE/api/chat/import?user_id=ctx" >/dev/null
done
CONTEXT_4000="$BASE/api/chat/sessions/ctx200/context?user_id=ctx&max_tokens=4000"
CONTEXT_8000="$BASE/api/chat/sessions/ctx10k/context?user_id=ctx&max_tokens=8000"

cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"content":"Hello! How are you doing today? This is a typical chat message.","message_type":"user"}'
LUA

cat "$WORK/post.lua" >> "$WORK/many.lua"
cat >> "$WORK/many.lua" <<'LUA'
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
LUA

# CPU time (clock ticks) each thread name of the server has used so far,
# one "name ticks" line each; threads sharing a name are summed.
cpu_ticks() {
  for t in /proc/"$PID"/task/*; do
    printf '%s %s\n' "$(tr ' ' _ <"$t/comm")" "$(awk '{print $14 + $15}' "$t/stat")"
  done | awk '{a[$1] += $2} END {for (k in a) print k, a[k]}' | sort
}

run() { # name url [script]
  local name=$1 url=$2 script=${3:-}
  local out before wrk_cpu
  before=$(cpu_ticks)
  # bash's `time` gives wrk's own CPU (user and system seconds).
  wrk_cpu=$( { TIMEFORMAT='%U %S'; time wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
    ${script:+-s "$script"} "$url" >"$WORK/wrk.out"; } 2>&1)
  out=$(cat "$WORK/wrk.out")
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out")
  printf '%-28s %12s req/s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p99" "${non2xx:-0}"
  echo "$rps" > "$WORK/$name.rps"
  # Where the cores went, per request: each server thread (by name)
  # and wrk. What a scenario can reach is bound by this total (on all
  # cores) and by its busiest single thread (the SQLite writer for appends).
  local requests
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  # A thread started during the run counts from zero.
  join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$before") <(cpu_ticks) | awk -v n="$requests" -v hz="$(getconf CLK_TCK)" \
    -v wrk="$wrk_cpu" -v cores="$(nproc)" '
    { us = ($3 - $2) / hz / n * 1e6; if (us >= 0.05) { line = line sprintf(" %s %.1f,", $1, us); total += us } }
    END {
      split(wrk, w, " "); us = (w[1] + w[2]) / n * 1e6; total += us
      printf "  CPU per request (us):%s wrk %.1f; total %.1f, at most %.0f req/s on %d cores\n",
        line, us, total, cores * 1e6 / total, cores
    }'
}

echo "wrk: $THREADS threads, $CONNS connections, $DURATION per scenario; SQLITE_SYNCHRONOUS=$SQLITE_SYNCHRONOUS"
CEILING="$BASE/_bench/ceiling?session_id=$SID&user_id=bench"
CEILING_LIST="$BASE/_bench/ceiling?list_limit=100&user_id=lister"
echo "bytes: session $(curl -fs "$CEILING" | wc -c), list of 100 $(curl -fs "$CEILING_LIST" | wc -c)"  # also warms the ceilings
run ceiling "$CEILING"
run ceiling_list_100 "$CEILING_LIST"
run get_session_50 "$BASE/api/chat/sessions/$SID?user_id=bench"
run list_100 "$BASE/api/chat/sessions?user_id=lister&limit=100"
run post_message "$BASE/api/chat/sessions/$POST_SID/messages?user_id=poster" "$WORK/post.lua"
run post_message_200_sessions "$BASE" "$WORK/many.lua"

run context_4000_of_200 "$CONTEXT_4000"
# One client, one request at a time: the latency a caller sees.
wrk -t1 -c1 -d"$DURATION" --latency "$CONTEXT_8000" >"$WORK/one.out"
awk '/^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} /Requests\/sec/ {rps = $2}
  END {printf "%-28s p50 %s   p99 %s   (%s req/s at one client)\n", "context_8000_of_10000", p50, p99, rps}' "$WORK/one.out"

ratio() { # name ceiling
  awk -v a="$(cat "$WORK/$1.rps")" -v c="$(cat "$WORK/$2.rps")" -v n="$1" -v k="$2" \
    'BEGIN {printf "%-28s %.2fx %s\n", n, a / c, k}'
}
ratio get_session_50 ceiling
ratio list_100 ceiling_list_100
ratio post_message ceiling
ratio post_message_200_sessions ceiling
ratio context_4000_of_200 ceiling
echo "start to first 200 on /: $(( (ready_ns - start_ns) / 1000000 )) ms"
echo "release binary: $(stat -c %s "$BIN") bytes"
