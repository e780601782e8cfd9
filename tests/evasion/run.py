#!/usr/bin/env python3
"""Evasion suite: builds the attack captures (make_attacks.py) and checks
that each still yields the outcome its construction implies: the findings,
compared as tests/findings/run.py compares the golden lists, and the facts
named with the attack (sessions kept whole, counters, verdicts, offsets,
anomalies, peak memory, database size).

usage: run.py MXWATCH OUTDIR   (ends with "N passed, N failed")"""
import glob
import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "findings"))
import make_attacks  # noqa: E402
from run import parse_expected, placeholders, run_case  # noqa: E402


def peak_rss_mb(argv):
    """Peak resident memory of one run of argv, from the kernel's own
    accounting of that child (wait4), and its exit status."""
    with open(os.devnull, "wb") as null:
        p = subprocess.Popen(argv, stdout=null, stderr=null)
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024.0, p.returncode


def stored_size(mxwatch, tmp, capture):
    """Bytes of a fresh database after analysing capture into it."""
    db = os.path.join(tmp, "size.db")
    for f in glob.glob(db + "*"):
        os.unlink(f)
    r = subprocess.run([mxwatch, "analyze", "--db", db, capture], capture_output=True)
    if r.returncode not in (0, 1):
        raise RuntimeError("analyze into %s: exit %d" % (db, r.returncode))
    return sum(os.path.getsize(f) for f in glob.glob(db + "*"))


def fact_errors(a, seen, mxwatch, tmp):
    sessions = [r for r in seen["records"] if r.get("type") == "session"]
    errors = []
    f = a.facts
    if "sessions" in f and len(sessions) != f["sessions"]:
        errors.append("%d session records, expected %d" % (len(sessions), f["sessions"]))
    s = sessions[0] if sessions else {}
    smtp = s.get("smtp") or {}
    tls = s.get("tls") or {}
    checks = {
        "whole": lambda: s.get("end") == "fin" and smtp.get("quit") is True,
        "helo": lambda: smtp.get("helo_name") == f["helo"],
        "greeting": lambda: smtp.get("greeting_host") == f["greeting"],
        "ehlo_host": lambda: smtp.get("ehlo_host") == f["ehlo_host"],
        "offered": lambda: (smtp.get("starttls") or {}).get("offered") is f["offered"],
        "quit": lambda: smtp.get("quit") is f["quit"],
        "verdict": lambda: s.get("verdict") == f["verdict"],
        "verdict_reason": lambda: s.get("verdict_reason") == f["verdict_reason"],
        "certs_observable": lambda: tls.get("certs_observable") is f["certs_observable"],
        "smuggled_ends": lambda: smtp.get("smuggled_ends") == f["smuggled_ends"],
        "smuggled_end_offset": lambda: smtp.get("smuggled_end_offset") ==
        f["smuggled_end_offset"],
    }
    for key, ok in checks.items():
        if key in f and not ok():
            errors.append("%s: expected %r; session: %s" % (key, f.get(key, True),
                                                             {k: s.get(k) for k in (
                                                                 "end", "verdict",
                                                                 "verdict_reason")}))
    for kind, count in f.get("anomalies", {}).items():
        got = sum(x["count"] for x in s.get("anomalies", []) if x["kind"] == kind)
        if got != count:
            errors.append("anomaly %s counted %d, expected %d" % (kind, got, count))
    for text in f.get("counters", []):
        if text not in seen["stderr"]:
            errors.append("counters lack %r" % text)
    if "max_rss_mb" in f:
        rss, code = peak_rss_mb([mxwatch, "analyze", "--db", "none", a.path])
        print("     peak RSS %.1f MB (budget %d MB)" % (rss, f["max_rss_mb"]))
        if code not in (0, 1) or rss > f["max_rss_mb"]:
            errors.append("peak RSS %.1f MB over %d MB (exit %d)" % (rss, f["max_rss_mb"], code))
    if "db_like" in f:
        with_attack = stored_size(mxwatch, tmp, a.path)
        without = stored_size(mxwatch, tmp, f["db_like"])
        print("     database %d bytes, %d without the attack" % (with_attack, without))
        if with_attack != without:
            errors.append("database %d bytes, %d without the attack" % (with_attack, without))
    return errors


def main():
    mxwatch, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    values = placeholders()
    passed = failed = 0
    attacks = make_attacks.build(out)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = os.path.join(tmp, "cas.pem")
        with open(bundle, "w") as o:
            for pem in sorted(glob.glob(os.path.join(ROOT, "pcaps/certs/ca*.pem"))):
                o.write(open(pem).read())
        for a in attacks:
            seen = {}
            errors = run_case(mxwatch, tmp, a.path, a.fixture, parse_expected(a.expected),
                              values, bundle, seen)
            if not errors:
                errors = fact_errors(a, seen, mxwatch, tmp)
            if errors:
                failed += 1
                print("FAIL %s with %s" % (a.name, a.fixture))
                for e in errors:
                    print("       " + e)
            else:
                passed += 1
                print("ok   %s with %s: %s" % (a.name, a.fixture, a.expected))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
