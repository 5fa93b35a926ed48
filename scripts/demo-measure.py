#!/usr/bin/env python3
"""Submits N demo reports to a running reference server (started by
scripts/start.sh) one after another and reports how many ended with a branch
pushed and the median time from report to branch.

    scripts/demo-measure.py --base http://127.0.0.1:8080 --data-dir .userz-data \
        --server target/release/userz-server [-n 10]

It reads the demo's org and public key from DATA_DIR/demo.json, issues an API
key with the admin CLI (same data directory), submits each report as the
printed curl line does, and follows it through GET /v1/feedback/{id} and
GET /v1/agent-runs/{id}. Loopback only; bounded by --timeout per report.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

TERMINAL_RUN = {"branch_pushed", "pr_opened", "pr_failed", "failed", "cancelled", "timed_out"}
REPORTS = [
    "The Save button does nothing",
    "Clicking Save loses my text",
    "Nothing happens when I press the Save button",
    "The page has no title",
    "Save should keep the text after a reload",
    "The README does not say what the app does",
    "The text box is too small",
    "Save button gives no feedback when clicked",
    "Please add a heading above the text box",
    "The Save button should be disabled when the text is empty",
]


def call(method, url, headers, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per report")
    a = ap.parse_args()

    demo = json.load(open(os.path.join(a.data_dir, "demo.json")))
    env = dict(os.environ, USERZ_DATA_DIR=a.data_dir)
    out = subprocess.run([a.server, "admin", "key", "issue", "--org", demo["org"], "--name", "demo-measure"],
                         env=env, capture_output=True, text=True, check=True).stdout
    key = next(w for w in out.split() if w.startswith("sk_"))
    api = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    # A key issued beside a running server reaches it through the store's
    # event feed: give it a moment.
    for _ in range(60):
        try:
            call("GET", f"{a.base}/v1/feedback?limit=1", api)
            break
        except urllib.error.HTTPError as e:
            if e.code != 401:
                raise
            time.sleep(0.5)
    public = {"Content-Type": "application/json", "Origin": a.base, "X-Userz-Public-Key": demo["public_key"]}

    results = []
    for i in range(a.n):
        text = REPORTS[i % len(REPORTS)]
        fid = call("POST", f"{a.base}/v1/feedback", public, {"text": text, "severity": "high"})["id"]
        deadline = time.time() + a.timeout
        status, seconds, failure = "timeout", None, None
        while time.time() < deadline:
            fb = call("GET", f"{a.base}/v1/feedback/{fid}", api)
            runs = fb.get("runIds") or []
            if fb.get("label") not in (None, "benign"):
                status, failure = f"not run ({fb['label']})", fb.get("failure")
                break
            if runs:
                run = call("GET", f"{a.base}/v1/agent-runs/{runs[-1]}", api)
                if run["status"] in TERMINAL_RUN:
                    status, failure = run["status"], run.get("failure")
                    pushed = [t["at"] for t in run.get("timeline", []) if t["event"] == "BranchPushed"]
                    if pushed and fb.get("receivedAt"):
                        seconds = (pushed[0] - fb["receivedAt"]) / 1000
                    break
            time.sleep(1)
        results.append((status, seconds))
        print(f"report {i + 1}/{a.n}: {status}" + (f" in {seconds:.1f} s" if seconds else "")
              + (f" ({failure})" if failure else ""), flush=True)

    pushed = [s for st, s in results if st in ("branch_pushed", "pr_opened") and s is not None]
    median = f"{statistics.median(pushed):.1f} s" if pushed else "n/a"
    print(f"{len(pushed)}/{a.n} reports ended with a branch pushed; median report to branch: {median}")
    return 0 if results else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except urllib.error.HTTPError as e:
        sys.exit(f"HTTP {e.code}: {e.read().decode(errors='replace')}")
