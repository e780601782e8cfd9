#!/usr/bin/env python3
"""Hostile records for `mxwatch ingest`: real session and finding records
(RECORDS, as a sensor wrote them) each changed in one way a broken or
hostile sensor or transport could change them, between unchanged good
records. Writes OUT (the lines) and OUT.expected: the numbers of the lines
that must be rejected, one per line. Every changed record gets an id or
session starting with "badbad", so that nothing stored from one can hide.

Usage: ingest_hostile.py RECORDS OUT"""
import json
import sys

records = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
session = next(r for r in records if r["type"] == "session" and r.get("policy"))
finding = next(r for r in records if r["type"] == "finding")


def dump(r):
    # escaped: a lone surrogate cannot be written as UTF-8, only as \ud800
    return json.dumps(r, separators=(",", ":"), ensure_ascii=True).encode()


def changed(base, n, edit):
    r = json.loads(json.dumps(base))
    if r["type"] == "session":
        r["id"] = "badbad%010d" % n
    else:
        r["session"] = "badbad%010d" % n
    edit(r)
    return dump(r)


def setp(path, value):
    def edit(r):
        *parents, last = path.split(".")
        for p in parents:
            r = r[p]
        r[last] = value
    return edit


def drop(path):
    def edit(r):
        *parents, last = path.split(".")
        for p in parents:
            r = r[p]
        del r[last]
    return edit


S, F = session, finding
bad = [
    # broken JSON and what is not a record
    lambda n: dump(S)[:-1],                       # cut short
    lambda n: b"not json at all",
    lambda n: b"[1,2,3]",
    lambda n: b"{}",
    lambda n: b'{"type":"session",}',
    lambda n: b"{" + b'"a":' * 3000 + b"1" + b"}" * 3000,   # nesting past the limit
    lambda n: b'{"type":"session","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
    # huge strings
    lambda n: changed(F, n, setp("message", "A" * (2 << 20))),  # the line past 1 MiB
    lambda n: changed(F, n, setp("message", "B" * 70000)),      # the field past 64 KiB
    lambda n: changed(S, n, setp("policy.domain", "d" * 300 + ".test")),
    lambda n: changed(S, n, setp("sensor", "s" * 64)),
    # wrong types
    lambda n: changed(S, n, setp("server.port", "25")),
    lambda n: changed(S, n, setp("ts_start", 1700000000)),
    lambda n: changed(S, n, setp("sensor", ["a"])),
    lambda n: changed(S, n, setp("policy.domains", "example.test")),
    lambda n: changed(S, n, setp("policy.verified", "yes")),
    lambda n: changed(S, n, setp("client", "192.0.2.1")),
    lambda n: changed(S, n, setp("server.port", 25.5)),
    lambda n: changed(F, n, setp("alert", 1)),
    lambda n: changed(F, n, setp("client_port", None)),
    lambda n: changed(S, n, setp("type", 7)),
    # control characters, NUL and bytes that are not UTF-8
    lambda n: changed(S, n, setp("policy.domain", "evil\x1b[31m.test")),
    lambda n: changed(F, n, setp("message", "line\nbreak")),
    lambda n: changed(F, n, setp("message", "cut\x00short")),
    lambda n: changed(S, n, setp("sensor", "s\x07")),
    lambda n: changed(S, n, setp("verdict_reason", "a\x7fb")),
    lambda n: changed(S, n, lambda r: None).replace(b'"type":"session"', b'"type":"sess\x01ion"'),
    lambda n: changed(S, n, lambda r: None).replace(b'"sensor":"', b'"sensor":"\xff'),
    lambda n: changed(S, n, lambda r: None).replace(b'"sensor":"', b'"sensor":"\xc0\xaf'),
    # escapes that decode to what must not be stored as a name or message
    lambda n: changed(S, n, setp("policy.domain", "bad\ud800.test")),   # a lone surrogate
    lambda n: changed(S, n, setp("policy.domain", "csi\u009b31m.test")), # C1 control CSI
    lambda n: changed(S, n, setp("policy.mx_host", "mx\u202e.test")),    # bidi override
    lambda n: changed(S, n, setp("verdict_reason", "next\u0085line")),   # C1 next line
    lambda n: changed(F, n, setp("message", "sep\u2028arated")),         # line separator
    # values of the wrong form
    lambda n: changed(S, n, setp("verdict", "fine")),
    lambda n: changed(F, n, setp("id", "no-such-finding")),
    lambda n: changed(F, n, setp("severity", "apocalyptic")),
    lambda n: changed(S, n, setp("client.ip", "999.1.1.1")),
    lambda n: changed(S, n, setp("server.port", 70000)),
    lambda n: changed(S, n, setp("server.port", -1)),
    lambda n: changed(S, n, setp("ts_start", "2026-13-01T00:00:00Z")),
    lambda n: changed(S, n, setp("ts_end", "yesterday")),
    lambda n: changed(S, n, setp("sensor", "two words")),
    lambda n: changed(S, n, setp("community_id", "2:abc")),
    lambda n: changed(S, n, setp("policy.domains", ["ok.test", 5])),
    lambda n: changed(S, n, setp("policy.domains", ["ok.test", "bad name.test"])),
    lambda n: changed(S, n, setp("type", "bogus")),
    lambda n: changed(F, n, setp("ts", "2026-02-30T00:00:00Z")),
    # what must be there
    lambda n: changed(S, n, drop("sensor")),
    lambda n: changed(S, n, drop("community_id")),
    lambda n: changed(S, n, drop("server")),
    lambda n: changed(F, n, drop("message")),
    lambda n: changed(F, n, drop("session")),
]

lines, expected = [], []
good = [dump(r) for r in records if r["type"] in ("session", "finding")]
for i, make in enumerate(bad):
    lines.append(good[i % len(good)])
    lines.append(make(i))
    expected.append(len(lines))
lines += good
with open(sys.argv[2], "wb") as f:
    f.write(b"\n".join(lines) + b"\n")
with open(sys.argv[2] + ".expected", "w") as f:
    f.write("".join("%d\n" % n for n in expected))
print(f"{len(lines)} lines, {len(expected)} hostile")
