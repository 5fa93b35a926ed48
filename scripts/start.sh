#!/usr/bin/env bash
# The README's first command: installs what the reference server's embedded
# defaults need when it is missing, builds the server and the programs its
# sandbox runs, starts a local model server when no provider is configured,
# then starts the reference server (demo org, App and a local git repository
# on first start) and prints the curl line whose report ends as a pushed
# branch.
#
#   ./scripts/start.sh                  # http://127.0.0.1:8080, data in ./.userz-data
#
# Knobs (all optional):
#   USERZ_MODEL_API/_BASE_URL/_MODEL    a provider (see README); no local model then
#   USERZ_BUILD_PROFILE=debug           build and run debug binaries (default release)
#   USERZ_BIN_DIR=DIR                   use the programs already built in DIR, build nothing
#   USERZ_LLAMA_PORT=8091               port of the local model server
#   USERZ_DATA_DIR, USERZ_LISTEN, …     the server's own settings (userz-server --help)
#
# System packages (QEMU, bubblewrap) are installed as root or with
# passwordless sudo; otherwise the script stops and prints the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$SECONDS
say() { printf '[start %3ds] %s\n' "$((SECONDS - began))" "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=services.sh
source scripts/services.sh

# --- system packages -------------------------------------------------------
need_root_for() {
  if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then return 0; fi
  die "missing: $1. Run this once, then start again:
    sudo apt-get update && sudo apt-get install -y --no-install-recommends $2"
}
for tool in git python3 mkfs.ext4; do
  command -v "$tool" >/dev/null || { pkg=$tool; [ "$tool" = mkfs.ext4 ] && pkg=e2fsprogs; need_root_for "$tool" "$pkg"; svc_apt_install "$pkg"; }
done
command -v cargo >/dev/null || die "missing: cargo (Rust). Install it from your distribution or rustup, then start again."

# The sandbox: a microVM (own guest kernel per run) where QEMU runs; the
# process backend (bubblewrap, root only) otherwise.
if [ "${USERZ_SANDBOX_BACKEND:-auto}" != process ]; then
  if ! command -v qemu-system-x86_64 >/dev/null; then
    need_root_for "QEMU (the microVM sandbox)" qemu-system-x86
    say "installing QEMU (first time only)"
  fi
  say "checking QEMU and the guest kernel"
  svc_install_microvm || die "could not install QEMU or the guest kernel (see above)"
fi
if [ "$(id -u)" = 0 ] && ! command -v bwrap >/dev/null; then
  say "installing bubblewrap (the process sandbox's fallback)"
  svc_install_sandbox || say "bubblewrap is not installed: runs need the microVM backend"
fi

# --- model -----------------------------------------------------------------
llama_pid=""
cleanup() { [ -n "$llama_pid" ] && kill "$llama_pid" 2>/dev/null; true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -n "${USERZ_MODEL_API:-}" ]; then
  say "model: ${USERZ_MODEL:-?} at ${USERZ_MODEL_BASE_URL:-?} (USERZ_MODEL_API=$USERZ_MODEL_API)"
else
  port="${USERZ_LLAMA_PORT:-8091}"
  url="http://127.0.0.1:$port/v1"
  if python3 -c "import urllib.request; urllib.request.urlopen('$url/models', timeout=1)" 2>/dev/null; then
    say "model: reusing the local model server at $url"
  else
    if ! "$(svc_llama_venv)/bin/python" -c 'import llama_cpp.server' 2>/dev/null; then
      say "building the local model server (llama.cpp, first time only: ~8 min on 2 cores; log: $SVC_TOOLS/llama-prepare.log)"
      svc_llama_prepare >"$SVC_TOOLS/llama-prepare.log" 2>&1 &
      prep=$!
      while kill -0 "$prep" 2>/dev/null; do sleep 30; kill -0 "$prep" 2>/dev/null && say "  … still building the local model server"; done
      wait "$prep" || { tail -n 20 "$SVC_TOOLS/llama-prepare.log" >&2; die "the local model server did not build"; }
    fi
    svc_llama_prepare >/dev/null 2>&1 || die "the local model (SmolLM2-135M) could not be fetched"
    mkdir -p "$SVC_TOOLS"
    # chatml-function-calling: named tool choices are decoded against the
    # tool's JSON schema (the agent's guided turns rely on it).
    "$(svc_llama_venv)/bin/python" -m llama_cpp.server --model "$(svc_llama_model_path)" \
      --host 127.0.0.1 --port "$port" --n_ctx 8192 --n_threads 2 \
      --chat_format chatml-function-calling >"$SVC_TOOLS/llama-server.log" 2>&1 &
    llama_pid=$!
    for _ in $(seq 1 120); do
      python3 -c "import urllib.request; urllib.request.urlopen('$url/models', timeout=1)" 2>/dev/null && break
      kill -0 "$llama_pid" 2>/dev/null || { tail -n 20 "$SVC_TOOLS/llama-server.log" >&2; die "the local model server exited"; }
      sleep 0.5
    done
    say "model: local SmolLM2-135M-Instruct at $url (guided turns; set USERZ_MODEL_API for a real provider)"
  fi
  export USERZ_MODEL_API=openai USERZ_MODEL_BASE_URL="$url" USERZ_MODEL=smollm2-135m-instruct
  export USERZ_MODEL_MAX_TOKENS_FIELD=max_tokens USERZ_MODEL_GUIDED=1
fi

# --- build -----------------------------------------------------------------
if [ -n "${USERZ_BIN_DIR:-}" ]; then
  # Programs built elsewhere (the server and its sandbox find theirs there).
  bin="$USERZ_BIN_DIR"
  [ -x "$bin/userz-server" ] || die "USERZ_BIN_DIR=$bin holds no userz-server"
  say "using the programs in $bin"
else
  profile="${USERZ_BUILD_PROFILE:-release}"
  flag=(--release); [ "$profile" = debug ] && flag=()
  say "building the server and the sandbox's programs ($profile; the first build takes several minutes)"
  # The whole workspace's programs, as scripts/test.sh builds them (one
  # feature set: a second start, or a start after the tests, builds nothing).
  cargo build ${flag[@]+"${flag[@]}"} --locked --workspace --bins
  bin="target/$profile"
fi

# --- serve -----------------------------------------------------------------
say "starting the reference server"
"$bin/userz-server" "$@" 2>&1 | while IFS= read -r line; do
  printf '%s\n' "$line"
  case "$line" in
    "  curl "*) say "ready ($((SECONDS - began)) s since the command started)" ;;
  esac
done
