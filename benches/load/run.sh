#!/usr/bin/env bash
# HTTP load bench (not a test): POST /v1/feedback on the full server beside a
# bare axum handler that only parses the same JSON (load-baseline), in the same
# run. See benches/load/README.md.
#
#   benches/load/run.sh [--duration S] [--connections N] [--threads N]
#                       [--target URL] [-H 'Name: value']... [--start 'COMMAND']
#                       [--body FILE]
#
# --target   the full server's POST /v1/feedback URL (loopback only); without
#            it only the baseline is measured.
# -H         request header sent to both servers (e.g. the pub_ key, Origin).
# --start    command that starts the full server (run in its own process
#            group, stopped at the end); the bench waits until --target's port
#            accepts connections.
#
# Phase 1: wrk, closed loop (max throughput) for --duration with --connections.
# Phase 2: load-rate at half of each server's measured maximum for --duration,
#          latency from the scheduled send time (p99).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=10 CONNS=64 THREADS=2 TARGET="" START_CMD="" BODY="benches/load/feedback.json"
HEADERS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --target) TARGET="$2"; shift 2 ;;
    --start) START_CMD="$2"; shift 2 ;;
    --body) BODY="$2"; shift 2 ;;
    -H|--header) HEADERS+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$TARGET" in
  ""|http://127.*|http://localhost*|http://\[::1\]*) ;;
  *) echo "--target must be a loopback http:// URL" >&2; exit 2 ;;
esac

# shellcheck source=scripts/services.sh
source scripts/services.sh
svc_bench_tools

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
cargo build --release --quiet -p userz-benches --bin load-baseline --bin load-rate
BIN="$CARGO_TARGET_DIR/release"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { # wait_port HOST PORT SECONDS
  python3 - "$1" "$2" "$3" <<'PY'
import socket, sys, time
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + limit
while time.time() < end:
    try:
        socket.create_connection((host, port), 0.5).close(); sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}

# The baseline, on a free loopback port.
setsid "$BIN/load-baseline" --addr 127.0.0.1:0 >"$WORK/baseline.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do grep -q "^listening on" "$WORK/baseline.out" 2>/dev/null && break; sleep 0.1; done
BASE_ADDR="$(sed -n "s/^listening on //p" "$WORK/baseline.out" 2>/dev/null)"
[ -n "$BASE_ADDR" ] || { cat "$WORK/baseline.out" >&2; echo "load-baseline did not start" >&2; exit 1; }
BASELINE="http://$BASE_ADDR/v1/feedback"

if [ -n "$START_CMD" ]; then
  [ -n "$TARGET" ] || { echo "--start needs --target" >&2; exit 2; }
  setsid bash -c "$START_CMD" >"$WORK/target.log" 2>&1 &
  PIDS+=("$!")
  hostport="${TARGET#http://}"; hostport="${hostport%%/*}"
  host="${hostport%:*}"; port="${hostport##*:}"; host="${host#[}"; host="${host%]}"
  wait_port "$host" "$port" 120 || { tail -n 30 "$WORK/target.log" >&2; echo "the target did not come up" >&2; exit 1; }
fi

# wrk request script: the same body and headers for both servers.
{
  echo 'wrk.method = "POST"'
  printf 'wrk.body = [==[%s]==]\n' "$(cat "$BODY")"
  echo 'wrk.headers["Content-Type"] = "application/json"'
  for h in "${HEADERS[@]}"; do
    printf 'wrk.headers[ [==[%s]==] ] = [==[%s]==]\n' "$(echo "${h%%:*}" | xargs)" "$(echo "${h#*:}" | sed 's/^ *//')"
  done
} >"$WORK/post.lua"

declare -A RPS P99_CLOSED NON2XX P99_HALF HALF_LINE
run_max() { # run_max NAME URL
  local out="$WORK/$1.wrk"
  timeout $((DURATION + 30)) wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --latency -s "$WORK/post.lua" "$2" >"$out"
  RPS[$1]="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
  P99_CLOSED[$1]="$(awk '$1 == "99%" {print $2}' "$out")"
  NON2XX[$1]="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")"; NON2XX[$1]="${NON2XX[$1]:-0}"
  printf '%-9s max: %s req/s (closed loop, %s connections, %ss), p99 %s, non-2xx %s\n' \
    "$1" "${RPS[$1]}" "$CONNS" "$DURATION" "${P99_CLOSED[$1]}" "${NON2XX[$1]}"
}
run_half() { # run_half NAME URL
  local rate out="$WORK/$1.half" args=()
  rate="$(awk -v r="${RPS[$1]}" 'BEGIN {printf "%d", r / 2}')"
  for h in "${HEADERS[@]}"; do args+=(-H "$h"); done
  timeout $((DURATION + 30)) "$BIN/load-rate" --url "$2" --rate "$rate" --duration "$DURATION" \
    --connections "$CONNS" --body-file "$BODY" "${args[@]}" >"$out"
  P99_HALF[$1]="$(awk '/^p99_ms:/ {print $2}' "$out")"
  HALF_LINE[$1]="$(grep '^completed:' "$out")"
  printf '%-9s half load (%s req/s): p99 %s ms; %s\n' "$1" "$rate" "${P99_HALF[$1]}" "${HALF_LINE[$1]}"
}

echo "== phase 1: maximum throughput (wrk)"
run_max baseline "$BASELINE"
[ -z "$TARGET" ] || run_max target "$TARGET"
echo "== phase 2: p99 at half of each maximum (load-rate)"
run_half baseline "$BASELINE"
[ -z "$TARGET" ] || run_half target "$TARGET"

echo "== summary"
printf 'baseline: %s req/s, p99 at half load %s ms\n' "${RPS[baseline]}" "${P99_HALF[baseline]}"
if [ -n "$TARGET" ]; then
  printf 'target:   %s req/s, p99 at half load %s ms\n' "${RPS[target]}" "${P99_HALF[target]}"
  awk -v t="${RPS[target]}" -v b="${RPS[baseline]}" 'BEGIN {printf "ratio target/baseline: %.3f\n", t / b}'
  if [ "${NON2XX[target]}" != 0 ]; then
    echo "warning: the target answered ${NON2XX[target]} non-2xx responses (rate limits? auth? origin?)" >&2
  fi
fi
