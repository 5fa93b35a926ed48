#!/usr/bin/env bash
# The load bench against the reference server (not a test): builds
# `userz-server` in release mode, creates a throwaway data directory with an org
# and a `no_pr` App through the admin CLI (so the bench measures ingest — auth,
# Origin check, limits, validation, classification queueing and the durable
# SQLite append — and not agent runs), then runs benches/load/run.sh with the
# server as --target beside the bare axum baseline. Extra arguments go to
# run.sh (e.g. --duration 10 --connections 64). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
cargo build --release --quiet -p userz-reference-server --bin userz-server
SERVER="$CARGO_TARGET_DIR/release/userz-server"

DATA="$(mktemp -d)"
trap 'rm -rf "$DATA"' EXIT
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ORIGIN="http://127.0.0.1:3000"

export USERZ_DATA_DIR="$DATA" USERZ_SANDBOX=0 USERZ_BOOTSTRAP_DEMO=false
ORG="$("$SERVER" admin org create --name Bench --owner-email bench@example.test | awk '$1 == "id:" {print $2}')"
KEY="$("$SERVER" admin app create --org "$ORG" --name bench --origin "$ORIGIN" --mode no_pr |
  awk '$1 == "public" && $2 == "key:" {print $3}')"
[ -n "$ORG" ] && [ -n "$KEY" ] || { echo "admin set-up failed" >&2; exit 1; }

# Per-IP limits out of the way (every request comes from 127.0.0.1); the
# per-key sk_ bucket does not apply to widget submissions.
START="USERZ_LISTEN=127.0.0.1:$PORT USERZ_PUBLIC_PER_IP_BURST=4000000000 \
USERZ_PUBLIC_PER_IP_PER_MINUTE=4000000000 USERZ_LOG=warn exec $SERVER serve"
benches/load/run.sh --target "http://127.0.0.1:$PORT/v1/feedback" \
  -H "X-Userz-Public-Key: $KEY" -H "Origin: $ORIGIN" --start "$START" "$@"
