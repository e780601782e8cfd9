#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, cut from the bundled captures (real
software's traffic) with tshark, into OUT/<target>/. Usage: seeds.py OUT"""
import glob, os, struct, subprocess, sys

out = sys.argv[1]
caps = sorted(glob.glob("pcaps/*.pcap") + glob.glob("pcaps/*.pcapng") +
              glob.glob("pcaps/thirdparty/*.pcap*"))
LINKTYPES = {1: 0, 101: 1, 12: 1, 14: 1, 0: 2, 108: 3, 228: 4, 229: 5, 113: 6, 276: 7}
MAIL_PORTS = {"25", "465", "587", "2525"}


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tshark(cap, filt, *fields):
    args = ["tshark", "-r", cap, "-Y", filt, "-T", "fields", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    r = subprocess.run(args, capture_output=True, text=True)
    return [line.split("|") for line in r.stdout.splitlines() if line]


def frames(rows):
    """tcp.stream|tcp.srcport|payload rows -> one framed input per stream"""
    streams = {}
    for stream, sport, payload in rows:
        if not payload:
            continue
        data = bytes.fromhex(payload.replace(":", ""))
        d = 1 if sport in MAIL_PORTS else 0
        for i in range(0, len(data), 0xFFFF):
            chunk = data[i:i + 0xFFFF]
            streams.setdefault(stream, bytearray()).extend(
                bytes([d]) + struct.pack(">H", len(chunk)) + chunk)
    return streams


for cap in caps:
    base = os.path.basename(cap)
    if os.path.getsize(cap) < 256 * 1024:
        put("fuzz_capture", base, open(cap, "rb").read())
    raw = open(cap, "rb").read()
    if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") and len(raw) >= 24:
        lt = struct.unpack("<I", raw[20:24])[0] & 0xFFFF
        if lt in LINKTYPES:
            pos, n = 24, 0
            while pos + 16 <= len(raw) and n < 20:
                incl = struct.unpack("<I", raw[pos + 8:pos + 12])[0]
                put("fuzz_packet", f"{base}.{n}", bytes([LINKTYPES[lt]]) + raw[pos + 16:pos + 16 + incl])
                pos += 16 + incl
                n += 1
    for k, v in frames(tshark(cap, "tcp.len > 0 and not tls", "tcp.stream", "tcp.srcport",
                              "tcp.payload")).items():
        put("fuzz_smtp", f"{base}.{k}", bytes(v))
    for k, v in frames(tshark(cap, "tls", "tcp.stream", "tcp.srcport", "tcp.payload")).items():
        put("fuzz_tls", f"{base}.{k}", bytes(v))
    for i, (certs,) in enumerate(tshark(cap, "tls.handshake.certificate",
                                        "tls.handshake.certificate")):
        for j, c in enumerate(certs.split(",")):
            if c:
                put("fuzz_x509", f"{base}.{i}.{j}", bytes.fromhex(c.replace(":", "")))
    for i, (p,) in enumerate(tshark(cap, "dns and udp", "udp.payload")):
        put("fuzz_dns", f"{base}.{i}", bytes.fromhex(p.replace(":", "")))



def seg(flags, off, data=b""):
    return bytes([flags]) + struct.pack(">H", off) + bytes([len(data)]) + data


# Reassembly: in order, out of order, a conflicting overlap, a hole the
# peer acknowledged, data after the FIN (the shapes tests/unit/test_reasm.c
# asserts exactly).
put("fuzz_reasm", "in-order", seg(4, 0) + seg(0, 1, b"EHLO a\r\n") + seg(0, 9, b"QUIT\r\n") +
    seg(1, 15))
put("fuzz_reasm", "out-of-order", seg(4, 0) + seg(0, 9, b"QUIT\r\n") + seg(0, 1, b"EHLO a\r\n"))
put("fuzz_reasm", "overlap", seg(4, 0) + seg(0, 1, b"EHLO aaaa") + seg(0, 3, b"LO bbbb\r\n"))
put("fuzz_reasm", "acked-hole", seg(4, 0) + seg(0, 1, b"EHLO") + seg(0, 40, b"DATA\r\n") +
    seg(2, 60))
put("fuzz_reasm", "after-fin", seg(4, 0) + seg(1, 1, b"bye") + seg(0, 4, b"more"))

put("fuzz_policy", "sts", b"\0version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\n"
    b"mx: *.example.test\r\nmax_age: 86400\r\n")
put("fuzz_policy", "txt", b"\1v=STSv1; id=20240101T000000;")
for f in sorted(glob.glob("etc/*.policy") + glob.glob("tests/findings/fixtures/*")):
    if os.path.isfile(f):
        put("fuzz_policy", os.path.basename(f), b"\2" + open(f, "rb").read())
for t in sorted(os.listdir(out)):
    print(f"seeds: {t}: {len(os.listdir(os.path.join(out, t)))}")
