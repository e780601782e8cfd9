"""Classic pcap files read and written byte by byte, for the scripts that
build test captures (tests/ordering_pcaps.py, tests/evasion/make_attacks.py).

Only what those scripts need: Ethernet + IPv4 + TCP/UDP frames, the TCP
conversation of a real capture as its sequence of messages, and a new
conversation built around given messages."""
import struct

LINK_ETHERNET = 1
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def read_pcap(path):
    """(link type, [(ts_ns, frame)]) of a classic pcap file (us or ns)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    nano = struct.unpack(endian + "I", data[:4])[0] == 0xA1B23C4D
    link = struct.unpack(endian + "I", data[20:24])[0]
    off, frames = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        ts = sec * 10**9 + (frac if nano else frac * 1000)
        frames.append((ts, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return link, frames


class PcapWriter:
    """Nanosecond pcap, written as it goes (a flood need not fit in memory)."""

    def __init__(self, path, link=LINK_ETHERNET):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, link))

    def write(self, ts, frame):
        self.f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), len(frame)))
        self.f.write(frame)

    def close(self):
        self.f.close()


def write_pcap(path, link, frames):
    """frames: (ts_ns, bytes)."""
    w = PcapWriter(path, link)
    for ts, fr in frames:
        w.write(ts, fr)
    w.close()


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                    bytes(src), bytes(dst))
    return h[:10] + struct.pack("!H", checksum(h)) + h[12:] + payload


def tcp(src, dst, sport, dport, seq, ack, flags, data=b""):
    """An Ethernet frame holding one TCP segment (checksum left 0, as an
    offloading NIC leaves it in a capture)."""
    th = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                     flags, 65535, 0, 0)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ipv4(src, dst, 6, th + data)


def udp(src, dst, sport, dport, data):
    """An Ethernet frame holding one UDP datagram (checksum 0: none)."""
    uh = struct.pack("!HHHH", sport, dport, 8 + len(data), 0)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ipv4(src, dst, 17, uh + data)


def dns_name(name):
    return b"".join(bytes([len(l)]) + l for l in name.encode().split(b".")) + b"\0"


def dns_answer(qid, name, rtype, rdata, ttl=3600):
    """A DNS response (RFC 1035 4.1) with one question and one answer."""
    q = dns_name(name) + struct.pack("!HH", rtype, 1)
    a = dns_name(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata
    return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q + a


def parse_tcp(frame):
    """Ethernet + IPv4 + TCP fields, or None for anything else."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 15) * 4
    total = struct.unpack("!H", frame[16:18])[0]
    t = 14 + ihl
    sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", frame[t:t + 14])
    payload = frame[t + (off >> 4) * 4:14 + total]
    return {"src": frame[26:30], "dst": frame[30:34], "sport": sport, "dport": dport,
            "seq": seq, "ack": ack, "flags": flags, "payload": payload}


def messages(path):
    """The first TCP conversation of a capture as [(dir, bytes)], dir 0 from
    the client (the SYN's sender), consecutive bytes of one direction joined,
    retransmissions dropped. Also returns (client, server) as (ip, port)."""
    _, frames = read_pcap(path)
    ends, nxt, out = None, {}, []
    for _, fr in frames:
        p = parse_tcp(fr)
        if not p:
            continue
        here = ((p["src"], p["sport"]), (p["dst"], p["dport"]))
        if ends is None:
            if not p["flags"] & SYN or p["flags"] & ACK:
                continue
            ends = here
        if here == ends:
            d = 0
        elif here == (ends[1], ends[0]):
            d = 1
        else:
            continue
        if p["flags"] & SYN:
            nxt[d] = (p["seq"] + 1) & 0xFFFFFFFF
            continue
        data = p["payload"]
        if not data or d not in nxt:
            continue
        skip = (nxt[d] - p["seq"]) & 0xFFFFFFFF
        if skip >= len(data):  # retransmission (or old): nothing new
            continue
        data = data[skip:]
        nxt[d] = (nxt[d] + len(data)) & 0xFFFFFFFF
        if out and out[-1][0] == d:
            out[-1] = (d, out[-1][1] + data)
        else:
            out.append((d, data))
    return out, ends


class Conversation:
    """A TCP session built packet by packet: handshake, each message cut into
    segments of at most `mss` bytes and acknowledged, then FINs. Times start
    at t0 and step by `step` ns per packet."""

    def __init__(self, client, server, t0, isn=(1000, 5000), mss=1400, step=1000):
        self.ends = (client, server)
        self.seq = [isn[0], isn[1]]
        self.t = t0
        self.step = step
        self.mss = mss
        self.frames = []

    def packet(self, d, flags, data=b"", seq=None, ack=None):
        (a, ap), (b, bp) = self.ends if d == 0 else (self.ends[1], self.ends[0])
        s = self.seq[d] if seq is None else seq
        k = self.seq[1 - d] if ack is None else ack
        self.frames.append((self.t, tcp(a, b, ap, bp, s, k, flags, data)))
        self.t += self.step

    def handshake(self, syn_data=(b"", b"")):
        """SYN and SYN-ACK, with payload the peer does not take (no Fast
        Open): the ACKs say the data was dropped."""
        self.packet(0, SYN, syn_data[0], ack=0)
        self.seq[0] += 1
        self.packet(1, SYN | ACK, syn_data[1])
        self.seq[1] += 1
        self.packet(0, ACK)

    def send(self, d, data):
        for i in range(0, len(data), self.mss):
            piece = data[i:i + self.mss]
            self.packet(d, PSH | ACK, piece)
            self.seq[d] += len(piece)
        self.packet(1 - d, ACK)

    def close(self):
        self.packet(0, FIN | ACK)
        self.seq[0] += 1
        self.packet(1, FIN | ACK)
        self.seq[1] += 1
        self.packet(0, ACK)


def repeat_session(src, out, n, gap_ns=1000):
    """The first conversation of src sent n times, each from its own client
    port with its own sequence numbers, gap_ns apart."""
    msgs, (client, server) = messages(src)
    t = read_pcap(src)[1][0][0]
    w = PcapWriter(out)
    for k in range(n):
        c = Conversation((client[0], 10000 + k % 50000), server, t, isn=(1000 + k, 5000 + k))
        c.handshake()
        for d, data in msgs:
            c.send(d, data)
        c.close()
        for ts, fr in c.frames:
            w.write(ts, fr)
        t = c.t + gap_ns
    w.close()


if __name__ == "__main__":
    import sys
    if len(sys.argv) in (5, 6) and sys.argv[1] == "repeat":
        repeat_session(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                       int(sys.argv[5]) if len(sys.argv) == 6 else 1000)
    else:
        sys.exit("usage: pcaplib.py repeat SRC OUT N [GAP_NS]")
