#!/usr/bin/env bash
# Checks a staged Functions folder (default: dist/, made by scripts/package.sh):
#   - host.json is valid JSON and its customHandler executable is there and executable;
#   - every <dir>/function.json is valid JSON with a non-empty "bindings" array;
#   - the binary is statically linked (`file`, `ldd`);
#   - the binary starts the way the Functions host starts it (FUNCTIONS_CUSTOMHANDLER_PORT set,
#     working directory = the folder, argument `serve`) and answers GET / with 200 within 20 s,
#     and GET /api/health and GET /api/health/ready with 200.
set -euo pipefail

dist="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/dist}"
dist="$(cd "$dist" && pwd)"
BIN="chat-sessions"

log() { printf 'check-dist: %s\n' "$*"; }
die() { printf 'check-dist: FAIL: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 is needed to validate JSON"

# --- JSON --------------------------------------------------------------------------------
python3 - "$dist" "$BIN" <<'PY' || die "invalid host.json or function.json (see above)"
import json, os, sys
from pathlib import Path

dist, binary = Path(sys.argv[1]), sys.argv[2]
bad = 0

def fail(msg):
    global bad
    bad += 1
    print(f"  {msg}", file=sys.stderr)

try:
    host = json.loads((dist / "host.json").read_text())
except Exception as exc:
    fail(f"host.json: {exc}")
    host = {}
exe = host.get("customHandler", {}).get("description", {}).get("defaultExecutablePath")
if exe != binary:
    fail(f"host.json: customHandler.description.defaultExecutablePath is {exe!r}, expected {binary!r}")
if not host.get("customHandler", {}).get("enableForwardingHttpRequest"):
    fail("host.json: customHandler.enableForwardingHttpRequest is not true")

functions = sorted(p for p in dist.glob("*/function.json"))
if not functions:
    fail("no */function.json next to host.json")
for path in functions:
    try:
        doc = json.loads(path.read_text())
    except Exception as exc:
        fail(f"{path.relative_to(dist)}: {exc}")
        continue
    bindings = doc.get("bindings")
    if not isinstance(bindings, list) or not bindings:
        fail(f"{path.relative_to(dist)}: no bindings")
        continue
    for b in bindings:
        if not all(isinstance(b.get(k), str) and b.get(k) for k in ("type", "direction", "name")):
            fail(f"{path.relative_to(dist)}: binding without type/direction/name: {b}")
if bad:
    sys.exit(1)
print(f"check-dist: {len(functions)} function.json files and host.json are valid")
PY

# --- binary ------------------------------------------------------------------------------
exe="$dist/$BIN"
[[ -f "$exe" ]] || die "$exe is missing"
[[ -x "$exe" ]] || die "$exe is not executable"
if command -v file >/dev/null 2>&1; then
  desc="$(file -b "$exe")"
  case "$desc" in
    *"statically linked"* | *"static-pie linked"*) log "file: $desc" ;;
    *) die "$BIN is not statically linked: $desc" ;;
  esac
else
  log "file(1) not installed; skipping that check"
fi
if ldd_out="$(ldd "$exe" 2>&1)"; then
  case "$ldd_out" in
    *"statically linked"* | *"not a dynamic executable"*) log "ldd: $ldd_out" ;;
    *) die "ldd lists shared libraries: $ldd_out" ;;
  esac
else
  case "$ldd_out" in
    *"not a dynamic executable"* | *"statically linked"*) log "ldd: $ldd_out" ;;
    *) die "ldd failed: $ldd_out" ;;
  esac
fi

# --- start it like the host does ----------------------------------------------------------
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
data_dir="$(mktemp -d)"
out="$(mktemp)"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir" "$out"
}
trap cleanup EXIT

http_status() {
  # http_status URL -> prints the status code, or 000 when nothing answers.
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true
  else
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
  fi
}

log "starting $BIN serve on 127.0.0.1:$port (DATA_DIR=$data_dir)"
(
  cd "$dist"
  exec env -u COSMOS_ENDPOINT -u COSMOS_KEY \
    FUNCTIONS_CUSTOMHANDLER_PORT="$port" DATA_DIR="$data_dir" AUTH_MODE=none RUST_LOG=info \
    "./$BIN" serve
) >"$out" 2>&1 &
pid=$!

deadline=$((SECONDS + 20))
status="000"
while (( SECONDS < deadline )); do
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$out" >&2
    die "$BIN exited before answering GET /"
  fi
  status="$(http_status "http://127.0.0.1:$port/")"
  [[ "$status" == "200" ]] && break
  sleep 0.2
done
if [[ "$status" != "200" ]]; then
  cat "$out" >&2
  die "GET / did not answer 200 within 20 s (last status $status)"
fi
log "GET / -> 200"
health="$(http_status "http://127.0.0.1:$port/api/health")"
[[ "$health" == "200" ]] || { cat "$out" >&2; die "GET /api/health -> $health, expected 200"; }
log "GET /api/health -> 200"
ready="$(http_status "http://127.0.0.1:$port/api/health/ready")"
[[ "$ready" == "200" ]] || { cat "$out" >&2; die "GET /api/health/ready -> $ready, expected 200"; }
log "GET /api/health/ready -> 200"
log "ok: $dist"
