#!/usr/bin/env bash
# Builds the static Linux binary and stages dist/, the folder that
# `func azure functionapp publish <app>` runs from:
#
#   dist/host.json
#   dist/<FunctionName>/function.json   (one per folder of functions/)
#   dist/chat-sessions                  (x86_64-unknown-linux-musl, statically linked, 0755)
#   dist/.funcignore
#
# then checks it with scripts/check-dist.sh.
#
# Why musl: Azure's Linux images ship an older glibc than the build machine may have; a static
# binary runs on any of them. TLS is pure Rust (rustls), so no OpenSSL is involved. The C code in
# the build (rusqlite's bundled SQLite) is compiled by the `cc` crate, which for
# x86_64-unknown-linux-musl looks for `musl-gcc` — Debian's musl-tools package — so this script
# installs musl-tools when it is missing (as root, via apt-get).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

TARGET="x86_64-unknown-linux-musl"
BIN="chat-sessions"
DIST="$root/dist"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

log() { printf 'package: %s\n' "$*"; }
die() { printf 'package: error: %s\n' "$*" >&2; exit 1; }

apt_install() {
  # apt_install PACKAGE...: only as root on a Debian-like system; otherwise say what to do.
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing $* (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "$@" >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null
      apt-get install -y -qq "$@" >/dev/null
    }
  else
    die "missing $*; install it (e.g. sudo apt-get install -y $*) and rerun"
  fi
}

# --- toolchain ---------------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found (install Rust with rustup)"
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    log "adding Rust target $TARGET"
    rustup target add "$TARGET"
  fi
else
  log "rustup not found; assuming the $TARGET standard library is installed"
fi

command -v musl-gcc >/dev/null 2>&1 || apt_install musl-tools
command -v musl-gcc >/dev/null 2>&1 || die "musl-gcc still missing after installing musl-tools"
# Say it explicitly instead of relying on the cc crate's default for this target.
export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
export AR_x86_64_unknown_linux_musl="${AR_x86_64_unknown_linux_musl:-ar}"

# aws-lc-rs (rustls' default crypto provider in recent versions) builds its C code with CMake.
if grep -q '^name = "aws-lc-sys"' Cargo.lock 2>/dev/null && ! command -v cmake >/dev/null 2>&1; then
  apt_install cmake
fi

# --- build -------------------------------------------------------------------------------
log "cargo build --release --locked --target $TARGET"
cargo build --release --locked --target "$TARGET" --bin "$BIN"
binary="$target_dir/$TARGET/release/$BIN"
[[ -f "$binary" ]] || die "build produced no $binary"

# --- stage dist/ -------------------------------------------------------------------------
log "staging $DIST"
rm -rf "$DIST"
mkdir -p "$DIST"
cp host.json "$DIST/host.json"
count=0
for dir in functions/*/; do
  name="$(basename "$dir")"
  [[ -f "$dir/function.json" ]] || die "$dir has no function.json"
  # The host only sees function folders next to host.json; the folder name is the function name.
  cp -R "$dir" "$DIST/$name"
  count=$((count + 1))
done
[[ $count -gt 0 ]] || die "no function folders under functions/"
install -m 0755 "$binary" "$DIST/$BIN"
cat > "$DIST/.funcignore" <<'IGNORE'
.funcignore
.git*
.vscode
local.settings.json
local.settings.json.example
data/
*.log
__azurite_db*__.json
__blobstorage__
__queuestorage__
IGNORE
# Core Tools reads the worker runtime from local.settings.json; this one holds
# nothing else (no secrets) and .funcignore keeps it out of the upload.
printf '{"IsEncrypted": false, "Values": {"FUNCTIONS_WORKER_RUNTIME": "custom"}}\n' > "$DIST/local.settings.json"
log "staged host.json, $count functions, $BIN ($(du -h "$DIST/$BIN" | cut -f1))"

# --- check -------------------------------------------------------------------------------
"$root/scripts/check-dist.sh" "$DIST"
log "done: cd dist && func azure functionapp publish <app-name>"
