#!/usr/bin/env python3
"""Community ID v1 on records, judged independently: (1) a capture built
here with the TCP tuples of the specification's published baseline
(corelight/community-id-spec, baseline/baseline_deflt.json: IPv4
128.232.110.120:34855 - 66.35.250.204:80 and IPv6 ...:63943 -
2607:f8b0:400c:c03::1a:25) must carry exactly the published ids on its flow
records; (2) every flow of every capture given must carry the id tshark's
own communityid dissector computes for its first packet.

usage: community_id_check.py MXWATCH CAPTURE...   (ends with "N passed, N failed")"""
import ipaddress
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcaplib import ACK, PSH, SYN, checksum, write_pcap  # noqa: E402

PUBLISHED = [  # (client, cport, server, sport, id) from the specification
    ("128.232.110.120", 34855, "66.35.250.204", 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    ("2001:470:e5bf:dead:4957:2174:e82c:4887", 63943, "2607:f8b0:400c:c03::1a", 25,
     "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="),
]


def frame(src, dst, sport, dport, seq, ack, flags, data=b""):
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    th = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
    if a.version == 4:
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(th), 0, 0x4000, 64, 6, 0,
                        a.packed, b.packed)
        ip = h[:10] + struct.pack("!H", checksum(h)) + h[12:] + th
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip
    ip = struct.pack("!IHBB16s16s", 6 << 28, len(th), 6, 64, a.packed, b.packed) + th
    return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + ip


def main():
    mxwatch, caps = sys.argv[1], sys.argv[2:]
    passed = failed = 0

    def check(name, ok):
        nonlocal passed, failed
        print("%s %s" % ("ok  " if ok else "FAIL", name))
        passed += bool(ok)
        failed += not ok

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "published.pcap")
        t, frames = 1700000000 * 10**9, []
        for c, cp, s, sp, _ in PUBLISHED:
            for args in ((c, s, cp, sp, 100, 0, SYN), (s, c, sp, cp, 500, 101, SYN | ACK),
                         (c, s, cp, sp, 101, 501, PSH | ACK, b"hello\r\n")):
                t += 1000
                frames.append((t, frame(*args)))
        write_pcap(path, 1, frames)
        out = subprocess.run([mxwatch, "analyze", "--flows", "--json", "--db", "none", path],
                             capture_output=True, text=True).stdout
        got = {(r["client"]["ip"], r["client"]["port"]): r.get("community_id")
               for r in map(json.loads, out.splitlines())}
        for c, cp, s, sp, cid in PUBLISHED:
            check("%s:%d -> %s:%d: %s (the specification's value)" % (c, cp, s, sp, cid),
                  got.get((str(ipaddress.ip_address(c)), cp)) == cid)
    for cap in caps:
        r = subprocess.run(["tshark", "-r", cap, "--enable-protocol", "communityid", "-Y", "tcp",
                            "-T", "fields", "-E", "separator=|", "-e", "tcp.stream",
                            "-e", "communityid"], capture_output=True, text=True)
        want = {}
        for line in r.stdout.splitlines():
            stream, cid = line.split("|")
            want.setdefault(stream, cid)
        out = subprocess.run([mxwatch, "analyze", "--flows", "--json", "--db", "none", cap],
                             capture_output=True, text=True).stdout
        mine = {json.loads(l)["community_id"] for l in out.splitlines()}
        check("%s: %d flows, every id as tshark computes it" % (os.path.basename(cap), len(mine)),
              mine and mine <= set(want.values()))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
