#!/usr/bin/env python3
"""Capture-level check: per TCP flow and direction, the stream bytes mxwatch
reassembles must equal what tshark's own reassembly ("follow,tcp,raw")
reports for the same capture. tshark is the independent reference.

usage: check_captures.py MXWATCH CAPTURE...
Prints one line per capture and ends with "N passed, N failed"."""
import ipaddress
import json
import subprocess
import sys
from collections import defaultdict


def norm(ep):
    ep = ep.strip()
    host, port = ep.rsplit(":", 1)
    host = host.strip("[]")
    return (str(ipaddress.ip_address(host)), int(port))


def tshark_streams(cap):
    ids = subprocess.run(["tshark", "-r", cap, "-Y", "tcp", "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True).stdout.split()
    streams = sorted({int(x) for x in ids if x})
    if not streams:
        return []
    args = ["tshark", "-r", cap, "-q"]
    for s in streams:
        args += ["-z", "follow,tcp,raw,%d" % s]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    result = []
    cur = None
    for line in out.splitlines():
        if line.startswith("Follow: "):
            cur = {"nodes": [], "bytes": [0, 0]}
            result.append(cur)
        elif cur is None or line.startswith("=") or line.startswith("Filter:"):
            continue
        elif line.startswith("Node "):
            cur["nodes"].append(norm(line.split(": ", 1)[1]))
        elif line.strip():
            side = 1 if line.startswith("\t") else 0
            cur["bytes"][side] += len(line.strip()) // 2
    return result


def our_flows(mxwatch, cap):
    run = subprocess.run([mxwatch, "analyze", "--flows", "--json", cap], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError("mxwatch exit %d: %s" % (run.returncode, run.stderr.strip()))
    flows = []
    for line in run.stdout.splitlines():
        rec = json.loads(line)
        if rec.get("type") != "flow":
            continue
        c = (str(ipaddress.ip_address(rec["client"]["ip"])), rec["client"]["port"])
        s = (str(ipaddress.ip_address(rec["server"]["ip"])), rec["server"]["port"])
        flows.append({"client": c, "server": s,
                      "bytes": {c: rec["bytes"]["client"], s: rec["bytes"]["server"]},
                      "ts": rec["ts_start"]})
    return flows


def check(mxwatch, cap):
    ref = [s for s in tshark_streams(cap) if sum(s["bytes"]) > 0 and len(s["nodes"]) == 2]
    ours = [f for f in our_flows(mxwatch, cap) if sum(f["bytes"].values()) > 0]
    pool = defaultdict(list)
    for f in sorted(ours, key=lambda f: f["ts"]):
        pool[frozenset((f["client"], f["server"]))].append(f)
    errors = []
    for s in ref:
        key = frozenset(s["nodes"])
        if not pool[key]:
            errors.append("tshark stream %s <-> %s (%d/%d bytes) has no mxwatch flow"
                          % (s["nodes"][0], s["nodes"][1], s["bytes"][0], s["bytes"][1]))
            continue
        f = pool[key].pop(0)
        for i in (0, 1):
            want = s["bytes"][i]
            got = f["bytes"][s["nodes"][i]]
            if want != got:
                errors.append("%s -> %s: tshark %d bytes, mxwatch %d"
                              % (s["nodes"][i], s["nodes"][1 - i], want, got))
    for key, left in pool.items():
        for f in left:
            errors.append("mxwatch flow %s -> %s not in tshark" % (f["client"], f["server"]))
    return len(ref), errors


def main():
    mxwatch = sys.argv[1]
    passed = failed = 0
    for cap in sys.argv[2:]:
        try:
            n, errors = check(mxwatch, cap)
        except Exception as e:  # a crash or bad JSON is a failure, not an abort
            n, errors = 0, [str(e)]
        if errors:
            failed += 1
            print("FAIL %s" % cap)
            for e in errors:
                print("     %s" % e)
        else:
            passed += 1
            print("ok   %s (%d flows match tshark)" % (cap, n))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
