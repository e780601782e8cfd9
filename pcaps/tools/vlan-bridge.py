#!/usr/bin/python3
"""User-space VLAN "switch" for pcaps/make-captures.sh (AF_PACKET, root).

The sandbox kernel has no 8021q module and no bridge VLAN filtering, so a
VLAN trunk cannot be built from kernel devices.  This program plays two
access switches joined by a trunk, all inside one network namespace:

  client ns            switch ns (this program)                server ns
  c0 ---veth--- ACCESS_A  <-> [push tags] TRUNK_A ===veth=== TRUNK_B [pop] <-> ACCESS_B ---veth--- s0

Frames from an access port get the VLAN tag(s) inserted after the MAC
addresses and are sent on that side's trunk port; frames received on a trunk
port lose all their tags and go out on that side's access port.  Capturing
on TRUNK_A with tcpdump shows every frame of the session tagged, in both
directions (the kernel strips the outer tag on receive into packet metadata;
libpcap puts it back).

  mode dot1q:  one 802.1Q tag (TPID 0x8100), VID 100
  mode qinq:   802.1ad S-tag (TPID 0x88a8) VID 200, then 802.1Q C-tag VID 100

usage: vlan-bridge.py dot1q|qinq ACCESS_A TRUNK_A TRUNK_B ACCESS_B
"""
import select
import socket
import struct
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
VLAN_TPIDS = (0x8100, 0x88a8, 0x9100)


def tags(mode):
    c_tag = struct.pack("!HH", 0x8100, 100)          # PCP 0, DEI 0, VID 100
    if mode == "dot1q":
        return c_tag
    return struct.pack("!HH", 0x88a8, 200) + c_tag  # S-tag VID 200 outside


def push(frame, t):
    return frame[:12] + t + frame[12:]


def pop(frame):
    while len(frame) >= 18 and struct.unpack("!H", frame[12:14])[0] in VLAN_TPIDS:
        frame = frame[:12] + frame[16:]
    return frame


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("dot1q", "qinq"):
        print(__doc__, file=sys.stderr)
        return 2
    t = tags(sys.argv[1])
    names = sys.argv[2:]
    socks = {}
    for n in names:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((n, 0))
        socks[n] = s
    acc_a, trk_a, trk_b, acc_b = names
    # where a frame received on port X goes, and how it is changed
    route = {
        acc_a: (trk_a, lambda f: push(f, t)),
        trk_a: (acc_a, pop),
        trk_b: (acc_b, pop),
        acc_b: (trk_b, lambda f: push(f, t)),
    }
    by_fd = {s.fileno(): n for n, s in socks.items()}
    print("vlan-bridge %s: %s <-> %s == %s <-> %s" % (sys.argv[1], *names), flush=True)
    while True:
        ready, _, _ = select.select(list(socks.values()), [], [])
        for s in ready:
            name = by_fd[s.fileno()]
            frame, addr = s.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING:
                continue
            out, fn = route[name]
            try:
                socks[out].send(fn(frame))
            except OSError as e:
                print("drop %d-byte frame %s->%s: %s" % (len(frame), name, out, e), flush=True)


if __name__ == "__main__":
    sys.exit(main())
