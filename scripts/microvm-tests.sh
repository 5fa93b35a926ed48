#!/usr/bin/env bash
# Runs the microVM sandbox's integration tests (the sandbox conformance suite
# and the guest checks) as an UNPRIVILEGED user, which is what they prove:
# QEMU, the image build and every run need no root, no capability and no
# setuid helper. Called by scripts/test.sh after services_start (which
# installs QEMU and unpacks the guest kernel, exporting USERZ_VM_KERNEL and
# USERZ_VM_MODULES).
#
# The test binaries, the guest's binaries and the kernel are staged in a
# world-readable temporary directory (the checkout and the kernel cache may
# sit under directories only root can enter), then run with
# `runuser -u ${USERZ_MICROVM_USER:-nobody}` when called as root, or as the
# caller otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${USERZ_VM_KERNEL:?source scripts/services.sh and run svc_install_microvm first}"
: "${USERZ_VM_MODULES:?source scripts/services.sh and run svc_install_microvm first}"
user="${USERZ_MICROVM_USER:-nobody}"
threads="${USERZ_MICROVM_THREADS:-2}"

mapfile -t tests < <(cargo test -p userz-sandbox-microvm --tests --no-run --locked --message-format=json 2>/dev/null |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["executable"])
')
[ "${#tests[@]}" -gt 0 ] || { echo "microvm-tests: no test binaries were built" >&2; exit 1; }

stage="$(mktemp -d /tmp/userz-microvm.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
chmod 755 "$stage"
mkdir -p "$stage/bin" "$stage/tests" "$stage/kernel" "$stage/state"
cp target/debug/userz-agent target/debug/userz-escape-probe target/debug/userz-vm-init "$stage/bin/"
cp "$USERZ_VM_KERNEL" "$stage/kernel/vmlinuz"
modules="$stage/kernel/$(basename "$USERZ_VM_MODULES")"
cp -a "$USERZ_VM_MODULES" "$modules"
cp "${tests[@]}" "$stage/tests/"
chmod -R a+rX "$stage"

run_as=()
if [ "$(id -u)" = 0 ]; then
  chown -R "$user" "$stage/state"
  run_as=(runuser -u "$user" --)
fi
status=0
for t in "$stage"/tests/*; do
  # The host-cgroup test needs root: scripts/test.sh runs it in its root part.
  case "$(basename "$t")" in host_cgroup-*) continue ;; esac
  echo "== microVM tests: $(basename "$t") as $(${run_as[@]+"${run_as[@]}"} id -un)"
  ${run_as[@]+"${run_as[@]}"} env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME="$stage/state" \
    RUST_BACKTRACE=1 USERZ_BIN_DIR="$stage/bin" USERZ_VM_KERNEL="$stage/kernel/vmlinuz" \
    USERZ_VM_MODULES="$modules" USERZ_MICROVM_STATE="$stage/state" \
    "$t" --test-threads "$threads" || status=1
done
exit "$status"
