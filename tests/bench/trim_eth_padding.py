#!/usr/bin/env python3
"""trim_eth_padding.py IN OUT - copy a classic Ethernet pcap, cutting the padding after IP;
prints how many frames it trimmed.

tcprewrite from 4.4.1 (Debian 12 has 4.4.3; later releases made it opt-in, --fixhdrlen) sets
the IP length of every packet it edits to the frame length, so the Ethernet padding of short
frames becomes TCP payload (tcpreplay issues #844, #845). make-bench-pcap.sh runs this first so
each frame ends where its IP packet does.
"""
import struct
import sys

VLAN_TYPES = (0x8100, 0x88A8, 0x9100)


def ip_end(frame):
    """Offset where the IP packet in an Ethernet frame ends, or None if not IP / unknown."""
    off = 14
    if len(frame) < 14:
        return None
    etype = struct.unpack_from("!H", frame, 12)[0]
    while etype in VLAN_TYPES and len(frame) >= off + 4:
        etype = struct.unpack_from("!H", frame, off + 2)[0]
        off += 4
    if etype == 0x0800 and len(frame) >= off + 4:
        total = struct.unpack_from("!H", frame, off + 2)[0]
        return off + total if total >= 20 else None  # 0: segmentation offload, keep
    if etype == 0x86DD and len(frame) >= off + 6:
        return off + 40 + struct.unpack_from("!H", frame, off + 4)[0]
    return None


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: trim_eth_padding.py IN.pcap OUT.pcap")
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        sys.exit(f"{sys.argv[1]}: not a classic pcap file")
    if struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF != 1:
        sys.exit(f"{sys.argv[1]}: link type is not Ethernet")
    out = [data[:24]]
    pos, trimmed = 24, 0
    while pos + 16 <= len(data):
        sec, frac, caplen, wirelen = struct.unpack_from(e + "IIII", data, pos)
        frame = data[pos + 16:pos + 16 + caplen]
        next_pos = pos + 16 + caplen
        if len(frame) < caplen:
            sys.exit(f"{sys.argv[1]}: truncated record at offset {pos}")
        end = ip_end(frame)
        if end is not None and end < wirelen:
            trimmed += 1
            wirelen = end
            frame = frame[:end]
            caplen = len(frame)
        out.append(struct.pack(e + "IIII", sec, frac, caplen, wirelen))
        out.append(frame)
        pos = next_pos
    with open(sys.argv[2], "wb") as f:
        f.write(b"".join(out))
    print(trimmed)  # frames trimmed, for the caller's log


if __name__ == "__main__":
    main()
