#!/usr/bin/env python3
"""make_concurrent_pcap.py IN OUT SLICE_S - a high-concurrency capture from a long one.

The long benchmark capture holds tens of thousands of flows spread over hours, so only a few
hundred are open at any moment. This folds it in time: each flow is moved back by a whole number
of SLICE_S-second slices, chosen by the slice its first packet falls in, so every flow keeps its
own packets, gaps and order, while all of them now start within SLICE_S seconds of each other:
thousands are open at once. Frames are Ethernet (VLAN and QinQ tags skipped), IPv4 or IPv6; a
packet that is not TCP moves with the slice it falls in. Output: nanosecond pcap, in time order."""
import struct
import sys

sys.path.insert(0, __file__.rsplit("/", 2)[0])
from pcaplib import PcapWriter, read_pcap  # noqa: E402


def tcp_key(frame):
    """A direction-free key of a TCP frame's 5-tuple, or None."""
    off, etype = 12, None
    while off + 2 <= len(frame):
        etype = struct.unpack("!H", frame[off:off + 2])[0]
        if etype in (0x8100, 0x88A8, 0x9100):
            off += 4
            continue
        off += 2
        break
    if etype == 0x0800 and off + 20 <= len(frame):
        ihl = (frame[off] & 15) * 4
        if frame[off + 9] != 6 or off + ihl + 4 > len(frame):
            return None
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        l4 = off + ihl
    elif etype == 0x86DD and off + 40 <= len(frame):
        if frame[off + 6] != 6 or off + 44 > len(frame):
            return None  # extension headers: rare in the benchmark, moved by their slice
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        l4 = off + 40
    else:
        return None
    sport, dport = struct.unpack("!HH", frame[l4:l4 + 4])
    a, b = (src, sport), (dst, dport)
    return (a, b) if a <= b else (b, a)


def main():
    src, out, slice_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
    slice_ns = int(slice_s * 1e9)
    link, frames = read_pcap(src)
    if link != 1:
        sys.exit("make_concurrent_pcap: %s: not Ethernet (link type %d)" % (src, link))
    shift, packets, base = {}, [], None
    for ts, frame in frames:
        if base is None:
            base = ts
        key = tcp_key(frame)
        slot = (ts - base) // slice_ns
        if key is not None:
            slot = shift.setdefault(key, slot)
        packets.append((ts - slot * slice_ns, len(packets), frame))
    packets.sort()
    w = PcapWriter(out, link)
    for ts, _, frame in packets:
        w.write(ts, frame)
    w.f.close()
    print("make_concurrent_pcap: %d packets, %d TCP flows folded into %g s" %
          (len(packets), len(shift), slice_s), file=sys.stderr)


main()
