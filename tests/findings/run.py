#!/usr/bin/env python3
"""Golden findings: runs each case of cases.txt (one capture against one
policy fixture, in a fresh database) through `mxwatch analyze --json` and
compares the findings with the expected list. Fixture placeholders such as
{LEAF_SPKI_SHA256} are computed here with the openssl command from the
certificate files in pcaps/certs, independently of mxwatch.

usage: run.py MXWATCH   (ends with "N passed, N failed")"""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def openssl_digest(pem, spki, algo):
    der = subprocess.run(["openssl", "x509", "-in", pem, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    if spki:
        pub = subprocess.run(["openssl", "x509", "-in", pem, "-pubkey", "-noout"],
                             capture_output=True, check=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                             capture_output=True, check=True).stdout
    out = subprocess.run(["openssl", "dgst", "-" + algo, "-r"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return out.split()[0]


def placeholders():
    leaf = os.path.join(ROOT, "pcaps/certs/mx.example.test.pem")
    ca = os.path.join(ROOT, "pcaps/certs/ca.example.test.pem")
    return {
        "LEAF_SPKI_SHA256": openssl_digest(leaf, True, "sha256"),
        "LEAF_SHA256": openssl_digest(leaf, False, "sha256"),
        "LEAF_SPKI_SHA512": openssl_digest(leaf, True, "sha512"),
        "CA_SPKI_SHA256": openssl_digest(ca, True, "sha256"),
        "CA_SHA256": openssl_digest(ca, False, "sha256"),
        "TLS13_LEAF_SPKI_SHA256": openssl_digest(
            os.path.join(ROOT, "pcaps/certs/mx-tls13.example.test.pem"), True, "sha256"),
        "WRONG_SHA256": "00" * 31 + "01",
    }


def expand(name, values, seen=None):
    """Fixture text with @include lines and placeholders resolved; returns
    (policy text, [sql statements])."""
    seen = seen or set()
    if name in seen:
        raise ValueError("include loop at " + name)
    seen.add(name)
    policy, sql = [], []
    with open(os.path.join(HERE, "fixtures", name)) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("@include "):
                p, s = expand(line.split(None, 1)[1], values, seen)
                policy += p
                sql += s
            elif line.startswith("sql: "):
                sql.append(line[5:])
            else:
                policy.append(re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], line))
    return policy, sql


def parse_expected(text):
    """[(id, domain, alert, rfc8460)], and ("verdict", V, None, None) for a
    "verdict=V" token: every session's verdict[:reason] must be V."""
    out = []
    for tok in text.split():
        if tok == "-":
            continue
        if tok.startswith("verdict="):
            out.append(("verdict", tok[8:], None, None))
            continue
        alert = not tok.startswith("~")
        tok = tok.lstrip("~")
        rfc = None
        if "=" in tok:
            tok, rfc = tok.split("=", 1)
        dom = ""
        if "@" in tok:
            tok, dom = tok.split("@", 1)
        out.append((tok, dom, alert, rfc))
    return out


def run_case(mxwatch, tmp, capture, fixture, expected, values, bundle, seen=None):
    """Errors of one case (none: it passed). `capture` is under pcaps/ or an
    absolute path; the client's key log beside it (X.keys for X.pcap) is
    read with --tls-keylog unless the capture is followed by "!keys";
    `seen`, a dict, gets the run's records and stderr."""
    capture, _, flag = capture.partition(" ")
    db = os.path.join(tmp, "case.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.unlink(db + suffix)
    policy, sql = expand(fixture + ".policy", values)
    pfile = os.path.join(tmp, "fixture.policy")
    with open(pfile, "w") as f:
        f.write("\n".join(policy) + "\n")
    r = subprocess.run([mxwatch, "policy", "import", "--db", db, pfile], capture_output=True,
                       text=True)
    if r.returncode:
        return ["policy import failed: " + r.stderr.strip()]
    for stmt in sql:
        subprocess.run(["sqlite3", db, stmt], check=True)
    conf = os.path.join(tmp, "rules.conf")
    with open(conf, "w") as f:
        f.write("[rules]\nca_bundle = %s\n" % bundle)
    path = os.path.join(ROOT, "pcaps", capture)  # an absolute capture stays as it is
    if not os.path.exists(path):
        return ["capture %s is missing" % capture]
    keys = os.path.splitext(path)[0] + ".keys"
    keylog = ["--tls-keylog", keys] if os.path.exists(keys) and flag != "!keys" else []
    r = subprocess.run([mxwatch, "analyze", "--json", "--no-store", "--db", db, "--config", conf,
                        *keylog, path], capture_output=True, text=True)
    if r.returncode not in (0, 1):
        return ["mxwatch exit %d: %s" % (r.returncode, r.stderr.strip()[-500:])]
    got = []
    records = [json.loads(line) for line in r.stdout.splitlines()]
    if seen is not None:
        seen.update(records=records, stderr=r.stderr)
    for rec in records:
        if rec.get("type") == "finding":
            got.append((rec["id"], rec["domain"] or "", rec["alert"], rec["rfc8460"]))
    errors = []
    for exp in expected:
        if exp[0] != "verdict":
            continue
        verdicts = sorted({r["verdict"] + (":" + r["verdict_reason"] if r["verdict_reason"] else "")
                           for r in records if r.get("type") == "session"})
        if verdicts != [exp[1]]:
            errors.append("verdicts %s, expected %s" % (verdicts, exp[1]))
    expected = [e for e in expected if e[0] != "verdict"]
    left = list(got)
    for exp in expected:
        match = [g for g in left if g[:3] == exp[:3] and (exp[3] is None or g[3] == exp[3])]
        if match:
            left.remove(match[0])
        else:
            errors.append("missing %s%s@%s%s" % ("" if exp[2] else "~", exp[0], exp[1],
                                                 "=" + exp[3] if exp[3] else ""))
    for g in left:
        errors.append("unexpected %s%s@%s=%s" % ("" if g[2] else "~", g[0], g[1], g[3]))
    return errors


def main():
    mxwatch = os.path.abspath(sys.argv[1])
    values = placeholders()
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        bundle = os.path.join(tmp, "cas.pem")
        with open(bundle, "w") as out:
            for pem in sorted(glob.glob(os.path.join(ROOT, "pcaps/certs/ca*.pem"))):
                out.write(open(pem).read())
        for no, line in enumerate(open(os.path.join(HERE, "cases.txt")), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            capture, fixture, expected = [x.strip() for x in line.split("|")]
            errors = run_case(mxwatch, tmp, capture, fixture, parse_expected(expected), values,
                              bundle)
            if errors:
                failed += 1
                print("FAIL cases.txt:%d %s with %s" % (no, capture, fixture))
                for e in errors:
                    print("       " + e)
            else:
                passed += 1
                print("ok   %s with %s" % (capture, fixture))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
