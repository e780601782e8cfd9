#!/usr/bin/env python3
"""Captures that stress the multi-worker hand-over (tests/workers_check.sh).

  ordering_pcaps.py flood OUT      one real DNS answer (the first UDP response
                                   in pcaps/nonsmtp-mixed.pcap, made by
                                   dnsmasq) repeated 3,300 times on one
                                   5-tuple: one worker gets every result while
                                   the others get nothing, which once left the
                                   reader, a worker and the writer waiting on
                                   each other at the end of input
  ordering_pcaps.py tcpdns OUT     an SMTP session to 192.0.2.25, then a newer
                                   DNS-over-TCP flow whose answer (MX
                                   example.org -> mx.example.org, A
                                   192.0.2.25) comes after a 10-byte hole, so
                                   it is only handed over when the flow ends:
                                   that answer must reach the rules after the
                                   older SMTP session, as with one worker

The second is built here, byte by byte: no software makes a capture with
exactly that hole on demand.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcaplib import ACK, PSH, SYN, read_pcap, tcp, write_pcap  # noqa: E402


def dns_name(n):
    return b"".join(bytes([len(l)]) + l for l in n.encode().split(b".")) + b"\0"


def flood(out):
    link, frames = read_pcap("pcaps/nonsmtp-mixed.pcap")
    answer = None
    for _, fr in frames:  # Ethernet, IPv4, UDP from port 53
        if len(fr) > 42 and fr[12:14] == b"\x08\x00" and fr[23] == 17:
            ihl = (fr[14] & 15) * 4
            if struct.unpack("!H", fr[14 + ihl:16 + ihl])[0] == 53:
                answer = fr
                break
    if answer is None:
        sys.exit("no UDP DNS answer in pcaps/nonsmtp-mixed.pcap")
    t0 = 1700000000 * 10**9
    write_pcap(out, link, [(t0 + i * 10**6, answer) for i in range(3300)])


def tcpdns(out):
    q = dns_name("example.org") + struct.pack("!HH", 15, 1)
    mx = dns_name("example.org") + struct.pack("!HHIH", 15, 1, 300, 2 + 16) + \
        struct.pack("!H", 10) + dns_name("mx.example.org")
    a = dns_name("mx.example.org") + struct.pack("!HHIH", 1, 1, 300, 4) + bytes([192, 0, 2, 25])
    msg = struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 1) + q + mx + a
    frames, t = [], [1700000000 * 10**9]

    def put(fr):
        t[0] += 10**6
        frames.append((t[0], fr))

    c, s = [10, 0, 0, 5], [192, 0, 2, 25]
    cs, ss = 1000, 5000
    put(tcp(c, s, 40001, 25, cs, 0, SYN))
    put(tcp(s, c, 25, 40001, ss, cs + 1, SYN | ACK))
    put(tcp(c, s, 40001, 25, cs + 1, ss + 1, ACK))
    for sender, line in ((s, b"220 mx.example.org ESMTP\r\n"), (c, b"EHLO client.example.net\r\n"),
                         (s, b"250 mx.example.org\r\n"), (c, b"MAIL FROM:<a@example.net>\r\n"),
                         (s, b"250 ok\r\n")):
        if sender is s:
            put(tcp(s, c, 25, 40001, ss + 1, cs + 1, ACK | PSH, line))
            ss += len(line)
        else:
            put(tcp(c, s, 40001, 25, cs + 1, ss + 1, ACK | PSH, line))
            cs += len(line)
    dc, ds, a_seq, b_seq = [10, 0, 0, 6], [10, 0, 0, 53], 7000, 9000
    put(tcp(dc, ds, 40002, 53, a_seq, 0, SYN))
    put(tcp(ds, dc, 53, 40002, b_seq, a_seq + 1, SYN | ACK))
    put(tcp(dc, ds, 40002, 53, a_seq + 1, b_seq + 1, ACK))
    put(tcp(ds, dc, 53, 40002, b_seq + 1 + 10, a_seq + 1, ACK | PSH,
            struct.pack("!H", len(msg)) + msg))
    write_pcap(out, 1, frames)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("flood", "tcpdns"):
        sys.exit("usage: ordering_pcaps.py flood|tcpdns OUT")
    {"flood": flood, "tcpdns": tcpdns}[sys.argv[1]](sys.argv[2])
