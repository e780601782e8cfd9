#!/usr/bin/env python3
"""Captures of an attacker on the path shaping packets to blind the monitor
(issue "Evasion"), each built byte by byte from a real session in pcaps/:
the conversation's messages are taken from the capture and sent again in a
new TCP session with the attack woven in.

Each attack comes with its expected outcome, derived from how it is built:
  - an attack that only adds packets beside the session (a lone odd
    timestamp, a SYN flood) must leave the findings of the untouched
    capture (tests/findings/cases.txt), and the session whole;
  - an attack on the session's own bytes (data on the SYN, an overlong
    reply line) that the receiving stack or server would not act on must
    leave the findings of the untouched capture and the real facts;
  - a Certificate message over the 128 KiB cap must make the session
    not-checkable with a tls-handshake-too-big finding, alerting under a
    policy;
  - a "." line ended by a lone CR or LF inside DATA (SMTP smuggling) must
    give an smtp-smuggling finding at the offset where it was put;
  - 200,000 spoofed DNS answers must not keep the genuine ones after them
    out of the passive-DNS store: the session they tie to its domain is
    judged for that domain.

usage: make_attacks.py OUTDIR       writes the captures, prints their names
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from pcaplib import (SYN, Conversation, PcapWriter, dns_answer, dns_name,  # noqa: E402
                     messages, read_pcap, tcp, udp, write_pcap, LINK_ETHERNET)

STRIPPED = os.path.join(ROOT, "pcaps/smtp-starttls-stripped.pcap")
TLS12 = os.path.join(ROOT, "pcaps/smtp-starttls-tls12.pcap")
PLAIN = os.path.join(ROOT, "pcaps/smtp-plain.pcap")

# Findings of the untouched captures (tests/findings/cases.txt).
STRIPPED_ENFORCE = ("starttls-stripped@example.test=starttls-not-supported "
                    "plaintext-to-policy-domain@example.test")
TLS12_ENFORCE = "-"
PLAIN_NONE = "~policy-unknown@example.test"

SEC = 10**9
TLS_MAX_HANDSHAKE = 128 * 1024


class Attack:
    def __init__(self, name, fixture, expected, **facts):
        self.name = name
        self.fixture = fixture
        self.expected = expected
        self.facts = facts  # what run.py checks beside the findings
        self.path = None


def rebuild(msgs, ends, t0, syn_data=(b"", b""), between=None):
    """A new session carrying msgs from t0 (the source capture's start, so
    certificates are judged at the time they were captured). between(i,
    conv) may add frames after message i."""
    conv = Conversation(ends[0], ends[1], t0, step=100 * 1000)
    conv.handshake(syn_data)
    for i, (d, data) in enumerate(msgs):
        conv.send(d, data)
        if between:
            between(i, conv)
    conv.close()
    return conv.frames


def start_of(capture):
    return read_pcap(capture)[1][0][0]


def index_of(msgs, d, prefix):
    return next(i for i, (md, b) in enumerate(msgs) if md == d and b.startswith(prefix))


def clock_attacks(out):
    msgs, ends = messages(STRIPPED)
    ehlo = index_of(msgs, 0, b"EHLO")
    made = []
    for name, offset in (("clock-past", -5 * SEC), ("clock-future", 86400 * SEC)):
        def between(i, conv, offset=offset):
            if i == ehlo:
                conv.frames.append((conv.t + offset, tcp([10, 9, 9, 9], [10, 9, 9, 10], 40000,
                                                         25, 7, 0, SYN)))
        a = Attack(name, "sts-enforce", STRIPPED_ENFORCE, sessions=1, whole=True,
                   counters=["1 packets with an outlying time", "0 time jumps back"])
        a.path = os.path.join(out, name + ".pcap")
        write_pcap(a.path, LINK_ETHERNET, rebuild(msgs, ends, start_of(STRIPPED), between=between))
        made.append(a)
    return made


def syn_data_attack(out):
    msgs, ends = messages(TLS12)
    a = Attack("syn-data", "sts-enforce", TLS12_ENFORCE, sessions=1, helo="client.sender.test",
               greeting="mx.example.test", offered=True, anomalies={"syn-data": 2})
    a.path = os.path.join(out, a.name + ".pcap")
    forged = (b"EHLO syn-data.evil\r\n", b"220 syn-data.evil ESMTP\r\n250 STARTTLS\r\n")
    write_pcap(a.path, LINK_ETHERNET, rebuild(msgs, ends, start_of(TLS12), syn_data=forged))
    return [a]


def overlong_ehlo_attack(out):
    msgs, ends = messages(TLS12)
    i = index_of(msgs, 1, b"250-")
    lines = msgs[i][1].split(b"\r\n")[:-1]
    first, rest = lines[0], [l for l in lines[1:]]
    starttls = [l for l in rest if l[4:] == b"STARTTLS"]
    rest = [l for l in rest if l[4:] != b"STARTTLS"]
    # The first line made 5,000 bytes over the line cap, STARTTLS right
    # after it, where the shifted reply once read it as the host name.
    reply = [first + b" " + b"A" * (5000 + 4096)] + [b"250-" + s[4:] for s in starttls] + rest
    reply[-1] = b"250 " + reply[-1][4:]
    msgs[i] = (1, b"\r\n".join(reply) + b"\r\n")
    a = Attack("overlong-ehlo", "sts-enforce", TLS12_ENFORCE, sessions=1, offered=True,
               ehlo_host="mx.example.test", anomalies={"line-too-long": 1})
    a.path = os.path.join(out, a.name + ".pcap")
    write_pcap(a.path, LINK_ETHERNET, rebuild(msgs, ends, start_of(TLS12)))
    return [a]


def tls_records(data):
    """(type, version, body) of each record, and the bytes after the last."""
    recs, off = [], 0
    while off + 5 <= len(data):
        typ, ver, ln = struct.unpack("!BHH", data[off:off + 5])
        if off + 5 + ln > len(data):
            break
        recs.append((typ, ver, data[off + 5:off + 5 + ln]))
        off += 5 + ln
    return recs, data[off:]


def handshake_messages(body):
    out, off = [], 0
    while off + 4 <= len(body):
        ln = int.from_bytes(body[off + 1:off + 4], "big")
        out.append((body[off], body[off + 4:off + 4 + ln]))
        off += 4 + ln
    return out


def as_records(version, handshake):
    return b"".join(struct.pack("!BHH", 22, version, len(handshake[i:i + 16384])) +
                    handshake[i:i + 16384] for i in range(0, len(handshake), 16384))


def cert_list(entries):
    body = b"".join(len(c).to_bytes(3, "big") + c for c in entries)
    return len(body).to_bytes(3, "big") + body


def certificate_attacks(out):
    msgs, ends = messages(TLS12)
    i = index_of(msgs, 1, b"\x16\x03")
    recs, tail = tls_records(msgs[i][1])
    version = recs[0][1]
    hs = handshake_messages(b"".join(body for typ, _, body in recs if typ == 22))
    cert_i = next(k for k, (t, _) in enumerate(hs) if t == 11)
    body = hs[cert_i][1]
    chain, off = [], 3
    while off < len(body):
        ln = int.from_bytes(body[off:off + 3], "big")
        chain.append(body[off + 3:off + 3 + ln])
        off += 3 + ln
    variants = {
        # One entry of 1 MB after the real chain.
        "cert-one-huge": cert_list(chain + [b"\x30" + b"\x82" * 3 + b"\x00" * (1 << 20)]),
        # The CA certificate 2,000 times (about 1.6 MB).
        "cert-many": cert_list(chain + [chain[-1]] * 2000),
        # The real chain under a header that claims 16 MB.
        "cert-claims-16mb": None,
    }
    made = []
    for name, new_body in variants.items():
        flight = b""
        for t, b in hs:
            if t == 11 and new_body is None:
                flight += bytes([11]) + (0xFFFFFF).to_bytes(3, "big") + b
            elif t == 11:
                flight += bytes([11]) + len(new_body).to_bytes(3, "big") + new_body
            else:
                flight += bytes([t]) + len(b).to_bytes(3, "big") + b
        m = list(msgs)
        m[i] = (1, as_records(version, flight) + tail)
        for fixture, expected in (("sts-enforce", "tls-handshake-too-big@example.test"),
                                  ("none", "~tls-handshake-too-big")):
            a = Attack(name + "-" + fixture, fixture, expected, sessions=1,
                       verdict="not-checkable", verdict_reason="handshake-too-big",
                       certs_observable=False, max_rss_mb=120)
            a.path = os.path.join(out, name + ".pcap")
            made.append(a)
        write_pcap(made[-1].path, LINK_ETHERNET, rebuild(m, ends, start_of(TLS12)))
    return made


def smuggling_attacks(out):
    msgs, ends = messages(PLAIN)
    data = index_of(msgs, 0, b"DATA")
    body_i = data + 2  # DATA, 354, then the body
    d, body = msgs[body_i]
    assert d == 0 and body.endswith(b"\r\n.\r\n")
    client_before = sum(len(b) for md, b in msgs[:body_i] if md == 0)
    made = []
    for name, seq in (("smuggle-lf-dot-lf", b"\n.\n"), ("smuggle-lf-dot-crlf", b"\n.\r\n"),
                      ("smuggle-cr-dot-cr", b"\r.\r")):
        second = (b"MAIL FROM:<attacker@evil.test>\r\nRCPT TO:<victim@example.test>\r\n"
                  b"DATA\r\nSubject: smuggled\r\n\r\nnot from the sender\r\n")
        cut = len(body) - 5
        new_body = body[:cut] + seq + second + body[cut:]
        m = list(msgs)
        m[body_i] = (0, new_body)
        dot = client_before + cut + seq.index(b".")
        a = Attack(name, "none", "smtp-smuggling@example.test " + PLAIN_NONE, sessions=1,
                   smuggled_ends=1, smuggled_end_offset=dot, quit=True)
        a.path = os.path.join(out, name + ".pcap")
        write_pcap(a.path, LINK_ETHERNET, rebuild(m, ends, start_of(PLAIN)))
        made.append(a)
    return made


def dns_poison_attack(out, spoofed=200_000):
    """200,000 distinct spoofed answers (A records of names no session uses)
    fill the passive-DNS store, then the genuine answers (MX example.test
    -> mx.example.test, A mx.example.test -> the server), then the TLS
    session to that server, whose SNI names mx.example.test and whose
    recipients are encrypted: only the observed answers tie it to
    example.test, a domain the cache does not hold, so policy-unknown."""
    msgs, ends = messages(TLS12)
    t0 = start_of(TLS12)
    a = Attack("dns-poison", "none", "~policy-unknown@example.test", sessions=1,
               counters=["dns responses %d" % (spoofed + 2)])
    a.path = os.path.join(out, a.name + ".pcap")
    w = PcapWriter(a.path)
    resolver, client = [10, 53, 0, 1], [10, 53, 0, 2]
    t = t0 - (spoofed + 10) * 1000
    for k in range(spoofed):
        ans = dns_answer(k & 0xFFFF, "h%d.spoof.test" % k, 1, bytes([10, 99, (k >> 8) & 255,
                                                                     k & 255]))
        w.write(t, udp(resolver, client, 53, 20000 + k % 40000, ans))
        t += 1000
    mx = struct.pack("!H", 10) + dns_name("mx.example.test")
    w.write(t, udp(resolver, client, 53, 1053, dns_answer(1, "example.test", 15, mx)))
    w.write(t + 1000, udp(resolver, client, 53, 1054,
                          dns_answer(2, "mx.example.test", 1, bytes(ends[1][0]))))
    for ts, fr in rebuild(msgs, ends, t0):
        w.write(ts, fr)
    w.close()
    return [a]


def flood_attack(out, syns=1_000_000):
    """SYN-only flows from spoofed clients to port 25 of spoofed servers,
    sent between the victim's EHLO and the server's reply (where the
    stripped STARTTLS is), one microsecond apart."""
    msgs, ends = messages(STRIPPED)
    ehlo = index_of(msgs, 0, b"EHLO")
    a = Attack("syn-flood", "sts-enforce", STRIPPED_ENFORCE, sessions=1, whole=True,
               counters=["flows without payload (not recorded) %d" % syns], max_rss_mb=256,
               db_like=STRIPPED)
    a.path = os.path.join(out, a.name + ".pcap")
    w = PcapWriter(a.path)
    template = bytearray(tcp([10, 0, 0, 0], [10, 1, 0, 0], 1024, 25, 0, 0, SYN))
    conv = Conversation(ends[0], ends[1], start_of(STRIPPED), step=100 * 1000)
    conv.handshake()
    for i, (d, data) in enumerate(msgs):
        conv.send(d, data)
        if i != ehlo:
            continue
        for ts, fr in conv.frames:
            w.write(ts, fr)
        conv.frames = []
        for k in range(syns):
            # Source 10.<k> and port vary; destination one of 65,536 servers.
            struct.pack_into("!4s4s", template, 26, bytes([10, (k >> 16) & 255, (k >> 8) & 255,
                                                           k & 255]),
                             bytes([10, 128 | (k >> 24), (k >> 8) & 255, k & 255]))
            struct.pack_into("!HH I", template, 34, 1024 + (k % 60000), 25, k)
            w.write(conv.t + k * 1000, bytes(template))
        conv.t += syns * 1000
    conv.close()
    for ts, fr in conv.frames:
        w.write(ts, fr)
    w.close()
    return [a]


def build(out, flood=True):
    os.makedirs(out, exist_ok=True)
    attacks = (clock_attacks(out) + syn_data_attack(out) + overlong_ehlo_attack(out) +
               certificate_attacks(out) + smuggling_attacks(out) + dns_poison_attack(out))
    if flood:
        attacks += flood_attack(out)
    return attacks


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for a in build(sys.argv[1]):
        print(a.path)
