#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need when it is
# missing. This is the README's test command; .ci/run calls it.
#
# Real services (PostgreSQL, NATS with JetStream, Redis, an S3-compatible
# server, an SMTP sink for the dashboard's sign-in mails) are installed when missing and started on loopback with throwaway
# data directories by scripts/services.sh, and stopped on exit. The same script
# installs bubblewrap for the process-sandbox escape suite (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (install Rust with rustup)" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# shellcheck source=scripts/services.sh
source scripts/services.sh

log "build prerequisites"
svc_build_prereqs

log "format"
cargo fmt --all -- --check

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "benches build"
cargo bench --workspace --locked --no-run

log "doc tests"
cargo test --workspace --doc --locked

log "services"
trap services_stop EXIT
services_start

log "binaries"
# The agent and the sandbox launcher run as separate programs in the sandbox
# tests; userz_testkit::bins finds them next to the test executables.
cargo build --workspace --bins --locked

log "tests"
cargo nextest run --workspace --locked --no-fail-fast
