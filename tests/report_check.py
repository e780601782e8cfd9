#!/usr/bin/env python3
"""`mxwatch report --json` against RFC 8460 section 4: every required key is
present with the right JSON type, result types come from the RFC's list, and
the counts agree with the findings `mxwatch analyze --json` printed for the
same captures (computed here, independently of the report code).

usage: report_check.py MXWATCH   (ends with "N passed, N failed")"""
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "findings"))
import run as findings  # noqa: E402  (fixture expansion and digests)

RESULT_TYPES = {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                "certificate-not-trusted", "validation-failure", "tlsa-invalid",
                "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
                "sts-policy-invalid", "sts-webpki-invalid"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def is_ip(s):
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def validate(rep):
    check("organization-name is a string", isinstance(rep.get("organization-name"), str))
    dr = rep.get("date-range")
    check("date-range is an object", isinstance(dr, dict))
    for k in ("start-datetime", "end-datetime"):
        v = (dr or {}).get(k)
        check("date-range.%s is RFC 3339" % k, isinstance(v, str) and RFC3339.match(v), repr(v))
    check("contact-info is a string", isinstance(rep.get("contact-info"), str))
    check("report-id is a non-empty string",
          isinstance(rep.get("report-id"), str) and rep["report-id"])
    pols = rep.get("policies")
    check("policies is a non-empty array", isinstance(pols, list) and pols)
    for p in pols or []:
        pol = p.get("policy", {})
        check("policy-type", pol.get("policy-type") in ("sts", "tlsa", "no-policy-found"),
              repr(pol.get("policy-type")))
        ps = pol.get("policy-string")
        check("policy-string is an array of strings",
              isinstance(ps, list) and all(isinstance(x, str) for x in ps))
        check("policy-domain is a string", isinstance(pol.get("policy-domain"), str))
        if "mx-host" in pol:
            check("mx-host is an array of strings",
                  isinstance(pol["mx-host"], list) and all(isinstance(x, str) for x in pol["mx-host"]))
        s = p.get("summary", {})
        for k in ("total-successful-session-count", "total-failure-session-count"):
            check("summary.%s is a non-negative integer" % k,
                  isinstance(s.get(k), int) and not isinstance(s.get(k), bool) and s[k] >= 0)
        fd = p.get("failure-details")
        check("failure-details is an array", isinstance(fd, list))
        for d in fd or []:
            check("result-type from RFC 8460", d.get("result-type") in RESULT_TYPES,
                  repr(d.get("result-type")))
            check("sending-mta-ip is an IP", is_ip(d.get("sending-mta-ip", "")))
            check("receiving-ip is an IP", is_ip(d.get("receiving-ip", "")))
            if "receiving-mx-hostname" in d:
                check("receiving-mx-hostname is a string",
                      isinstance(d["receiving-mx-hostname"], str))
            c = d.get("failed-session-count")
            check("failed-session-count is a positive integer",
                  isinstance(c, int) and not isinstance(c, bool) and c > 0)


def main():
    mxwatch = os.path.abspath(sys.argv[1])
    values = findings.placeholders()
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "r.db")
        policy, _ = findings.expand("sts-enforce.policy", values)
        # A second domain with no policy at all, served by the plaintext
        # Postfix of the corpus: its plaintext sessions succeed at nothing.
        policy += ["mx nopolicy.test 10 smtp.example.test",
                   "address smtp.example.test 127.0.0.2"]
        pf = os.path.join(tmp, "p.policy")
        open(pf, "w").write("\n".join(policy) + "\n")
        subprocess.run([mxwatch, "policy", "import", "--db", db, pf], check=True,
                       capture_output=True)
        caps = sorted(os.path.join(ROOT, "pcaps", f) for f in os.listdir(os.path.join(ROOT, "pcaps"))
                      if f.endswith((".pcap", ".pcapng")))
        out = subprocess.run([mxwatch, "analyze", "--json", "--db", db] + caps,
                             capture_output=True, text=True)
        check("analyze ran", out.returncode in (0, 1), out.stderr[-300:])
        recs = [json.loads(l) for l in out.stdout.splitlines()]
        # Independent expectation: per domain, sessions tied to it, those
        # that negotiated TLS, and the sessions with at least one finding
        # carrying an RFC 8460 type.
        sessions, tls_sessions, failed_sessions, details = {}, {}, {}, {}
        for r in recs:
            if r["type"] == "session":
                for dom in r["policy"]["domains"]:
                    sessions[dom] = sessions.get(dom, 0) + 1
                    if r["tls"] and r["tls"]["version"]:
                        tls_sessions.setdefault(dom, set()).add(r["id"])
            if r["type"] == "finding" and r["domain"] and r["rfc8460"]:
                failed_sessions.setdefault(r["domain"], set()).add(r["session"])
                key = (r["domain"], r["rfc8460"], r["client_ip"], r["server_ip"])
                details.setdefault(key, set()).add(r["session"])
        rep = subprocess.run([mxwatch, "report", "--json", "--db", db, "--org", "Example Org",
                              "--contact", "tlsrpt@example.org"], capture_output=True, text=True)
        check("report exit 0", rep.returncode == 0, rep.stderr)
        reports = [json.loads(l) for l in rep.stdout.splitlines()]
        check("one report per policy domain", len(reports) == len(sessions),
              "%d vs %d" % (len(reports), len(sessions)))
        for r in reports:
            validate(r)
            check("organization-name passed through", r["organization-name"] == "Example Org")
            check("contact-info passed through", r["contact-info"] == "tlsrpt@example.org")
            for p in r["policies"]:
                dom = p["policy"]["policy-domain"]
                s = p["summary"]
                fails = len(failed_sessions.get(dom, ()))
                check("%s failure count" % dom, s["total-failure-session-count"] == fails,
                      "%d vs %d" % (s["total-failure-session-count"], fails))
                # RFC 8460 4.4: "total-successful-session-count: the aggregate
                # count of successfully negotiated TLS-enabled connections".
                ok = len(tls_sessions.get(dom, set()) - failed_sessions.get(dom, set()))
                check("%s successful = TLS sessions without a failure" % dom,
                      s["total-successful-session-count"] == ok,
                      "%d vs %d" % (s["total-successful-session-count"], ok))
                check("%s counts no more sessions than were tied to it" % dom,
                      s["total-successful-session-count"] + s["total-failure-session-count"]
                      <= sessions[dom])
                if dom == "nopolicy.test":
                    plain_ok = sessions[dom] - len(tls_sessions.get(dom, ())) - fails
                    check("nopolicy.test: plaintext sessions without a failure exist (%d)"
                          % plain_ok, plain_ok > 0)
                    check("nopolicy.test: plaintext is never a successful session",
                          s["total-successful-session-count"] == 0)
                    check("nopolicy.test: reported as no-policy-found",
                          p["policy"]["policy-type"] == "no-policy-found")
                got = {}
                for d in p["failure-details"]:
                    k = (dom, d["result-type"], d["sending-mta-ip"], d["receiving-ip"])
                    got[k] = got.get(k, 0) + d["failed-session-count"]
                want = {k: len(v) for k, v in details.items() if k[0] == dom}
                check("%s failure-details match the findings" % dom, got == want,
                      "\n  got  %s\n  want %s" % (sorted(got.items()), sorted(want.items())))
                if dom == "example.test":
                    check("sts policy reported", p["policy"]["policy-type"] == "sts" and
                          "mode: enforce" in p["policy"]["policy-string"])
        # A date range outside the data gives no reports; --domain filters.
        none = subprocess.run([mxwatch, "report", "--json", "--db", db, "--from", "2001-01-01",
                               "--to", "2001-01-02"], capture_output=True, text=True)
        check("empty range gives no reports", none.returncode == 0 and not none.stdout.strip())
        one = subprocess.run([mxwatch, "report", "--json", "--db", db, "--domain", "example.test"],
                             capture_output=True, text=True)
        check("--domain keeps one report", len(one.stdout.splitlines()) == 1)
        bad = subprocess.run([mxwatch, "report", "--db", db, "--from", "yesterday"],
                             capture_output=True, text=True)
        check("bad date is a usage error", bad.returncode == 2 and "--from" in bad.stderr)
        summ = subprocess.run([mxwatch, "report", "--db", db], capture_output=True, text=True)
        total = sum(1 for r in recs if r["type"] == "session")
        check("summary counts every stored session",
              re.search(r"sessions\s+%d\b" % total, summ.stdout) is not None, summ.stdout[:300])
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
