#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need when it is
# missing. This is the README's test command; .ci/run calls it.
#
# Real services (PostgreSQL, NATS with JetStream, Redis, an S3-compatible
# server, an SMTP sink for the dashboard's sign-in mails) are installed when missing and started on loopback with throwaway
# data directories by scripts/services.sh, and stopped on exit. The same script
# installs bubblewrap for the process-sandbox escape suite (run as root), QEMU
# and the guest kernel for the microVM suite (run as an unprivileged user by
# scripts/microvm-tests.sh), the
# local model server (llama-cpp-python with SmolLM2) for userz-model's
# llama_local tests, and headless Chromium + playwright-core for the widget's
# browser self-test (tests/browser).
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

# The local model server is built from source the first time (minutes): start
# that now so it overlaps the build; services_start waits for it.
svc_llama_prepare_bg

log "build prerequisites"
svc_build_prereqs

log "format"
cargo fmt --all -- --check

log "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Each webhook provider of userz-security is an additive feature: the crate
# builds with none of them and with each one alone.
for features in "" webhook-stripe webhook-github webhook-gitlab webhook-slack webhook-discord; do
  cargo clippy -p userz-security --no-default-features ${features:+--features "$features"} --locked -- -D warnings
done

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

log "browser widget self-test (headless Chromium)"
node tests/browser/selftest.mjs

log "tests"
# The microVM backend's integration tests run below, as an unprivileged user;
# only its host-cgroup test (which needs root) runs here.
summary_dir="$(mktemp -d)"
trap 'services_stop; rm -rf "$summary_dir"' EXIT
cargo nextest run --workspace --locked --no-fail-fast \
  -E 'not (package(userz-sandbox-microvm) & kind(test) & not binary(host_cgroup))' 2>&1 | tee "$summary_dir/nextest.log"

log "microVM sandbox suite (unprivileged user)"
./scripts/microvm-tests.sh 2>&1 | tee "$summary_dir/microvm.log"

# One closing line over both parts.
python3 - "$summary_dir" <<'PY'
import re, sys
d = sys.argv[1]
nextest = open(f"{d}/nextest.log", errors="replace").read()
m = re.findall(r"Summary \[[^\]]*\] \d+ tests? run: (\d+) passed(?:[^,\n]*)(?:, (\d+) failed)?[^\n]*?(?:, (\d+) skipped)?\s*$", nextest, re.M)
passed, failed, skipped = (int(m[-1][0]), int(m[-1][1] or 0), int(m[-1][2] or 0)) if m else (0, 0, 0)
for p_, f_ in re.findall(r"test result: \w+\. (\d+) passed; (\d+) failed", open(f"{d}/microvm.log", errors="replace").read()):
    passed += int(p_); failed += int(f_)
print(f"total: {passed} passed, {failed} failed, {skipped} skipped")
PY
