#!/usr/bin/env python3
"""TLS 1.3 through key logs, judged by tshark: for every capture in pcaps/
with a key log beside it (X.pcap and X.keys, written by the TLS clients that
made the capture), tshark decrypts the handshake with the same key log
(-o tls.keylog_file) and its tls.handshake.certificate fields give the
expected chain of each session; mxwatch --tls-keylog must give the same
SHA-256 list. Then the same capture without the key log (every TLS 1.3
session not-checkable: tls13-no-keys, no chain), and with a key log whose
server secrets are each changed in one bit (tls13-decrypt-failed, no chain,
never a guess).

usage: tls13_keylog.py MXWATCH   (ends with "N passed, N failed")"""
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tshark_chains(cap, keys):
    """client port -> [sha256 of each certificate], from tshark."""
    r = subprocess.run(["tshark", "-r", cap, "-o", "tls.keylog_file:" + keys, "-Y",
                        "tls.handshake.certificate", "-T", "fields", "-E", "separator=|",
                        "-e", "tcp.dstport", "-e", "tls.handshake.certificate"],
                       capture_output=True, text=True, check=True)
    out = {}
    for line in r.stdout.splitlines():
        port, certs = line.split("|", 1)
        out[int(port)] = [hashlib.sha256(bytes.fromhex(c.replace(":", ""))).hexdigest()
                          for c in certs.split(",") if c]
    return out


def sessions(mxwatch, cap, *extra):
    r = subprocess.run([mxwatch, "analyze", "--json", "--db", "none", *extra, cap],
                       capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise RuntimeError("mxwatch exit %d: %s" % (r.returncode, r.stderr[-300:]))
    return [json.loads(l) for l in r.stdout.splitlines() if '"type":"session"' in l]


def tls13(s):
    return (s.get("tls") or {}).get("version") == "TLSv1.3"


def main():
    mxwatch = os.path.abspath(sys.argv[1])
    passed = failed = 0

    def check(name, ok, detail=""):
        nonlocal passed, failed
        print("%s %s%s" % ("ok  " if ok else "FAIL", name,
                           (": " + detail) if detail and not ok else ""))
        passed += bool(ok)
        failed += not ok

    caps = [c for c in sorted(glob.glob(os.path.join(ROOT, "pcaps/**/*.pcap"), recursive=True))
            if os.path.exists(c[:-5] + ".keys")]
    check("captures with key logs found (%d)" % len(caps), len(caps) > 0)
    with tempfile.TemporaryDirectory() as tmp:
        for cap in caps:
            keys = cap[:-5] + ".keys"
            name = os.path.relpath(cap, ROOT)
            every = {s["client"]["port"]: s for s in sessions(mxwatch, cap, "--tls-keylog", keys)}
            got = {p: s for p, s in every.items() if tls13(s)}
            # TLS 1.2 chains are in the clear and checked elsewhere.
            want = {p: c for p, c in tshark_chains(cap, keys).items() if p in got}
            check("%s: tshark read a chain in %d TLS 1.3 sessions" % (name, len(want)),
                  len(want) > 0 and set(want) <= set(got))
            for port, chain in sorted(want.items()):
                s = got.get(port, {})
                mine = [c["sha256"] for c in (s.get("tls") or {}).get("certs", [])]
                check("%s port %d: %d certificates, SHA-256 as tshark's (%s...)" %
                      (name, port, len(chain), chain[0][:16]),
                      mine == chain and s["tls"]["certs_source"] == "keylog", str(mine))
            plain = [s for s in sessions(mxwatch, cap) if tls13(s)]
            check("%s without the key log: every TLS 1.3 session tls13-no-keys (%d)" %
                  (name, len(plain)),
                  plain and all(s["verdict_reason"] in ("tls13-no-keys", "no-domain") and
                                not s["tls"]["certs"] and
                                s["tls"]["certs_unobservable_reason"] == "tls1.3-encrypted"
                                for s in plain))
            wrong = os.path.join(tmp, "wrong.keys")
            with open(wrong, "w") as f:
                for line in open(keys):
                    p = line.split()
                    if len(p) == 3 and p[0] == "SERVER_HANDSHAKE_TRAFFIC_SECRET":
                        flipped = "%x" % (int(p[2][0], 16) ^ 1) + p[2][1:]
                        line = "%s %s %s\n" % (p[0], p[1], flipped)
                    f.write(line)
            bad = [s for s in sessions(mxwatch, cap, "--tls-keylog", wrong) if tls13(s)]
            keyed = [s for s in bad if s["client"]["port"] in want]
            check("%s with one bit of each secret changed: tls13-decrypt-failed, no chain (%d)" %
                  (name, len(keyed)),
                  keyed and all(s["tls"]["certs_unobservable_reason"] == "tls13-decrypt-failed" and
                                not s["tls"]["certs"] and
                                any(a["kind"] == "tls13-decrypt-failed" for a in s["anomalies"])
                                for s in keyed))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
