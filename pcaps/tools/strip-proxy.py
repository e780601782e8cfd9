#!/usr/bin/python3
"""STARTTLS-stripping middlebox simulator (for pcaps/make-captures.sh).

Listens on LISTEN_ADDR:LISTEN_PORT, relays every connection to
UPSTREAM_ADDR:UPSTREAM_PORT, and in the server->client direction replaces
the capability word "STARTTLS" by "XXXXXXXA" (same length, so TCP lengths and
reply layout are unchanged), as some firewalls ("SMTP fixup"/"ESMTP
inspection") do.  Client->server bytes pass unchanged.  Line-buffered in the
server direction so a word split across two reads is still rewritten.

usage: strip-proxy.py LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT [SOURCE_ADDR]
"""
import socket
import sys
import threading


def pump(src, dst, rewrite):
    pending = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if rewrite:
                pending += data
                if b"\n" not in pending:
                    continue
                head, _, pending = pending.rpartition(b"\n")
                data = (head + b"\n").replace(b"STARTTLS", b"XXXXXXXA")
            dst.sendall(data)
        if pending:
            dst.sendall(pending)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(client, up_addr, up_port, source):
    fam = socket.AF_INET6 if ":" in up_addr else socket.AF_INET
    server = socket.socket(fam, socket.SOCK_STREAM)
    if source:
        server.bind((source, 0))
    server.connect((up_addr, up_port))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t1 = threading.Thread(target=pump, args=(client, server, False))
    t2 = threading.Thread(target=pump, args=(server, client, True))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    client.close()
    server.close()


def main():
    if len(sys.argv) not in (5, 6):
        print(__doc__, file=sys.stderr)
        return 2
    laddr, lport, uaddr, uport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    source = sys.argv[5] if len(sys.argv) == 6 else None
    fam = socket.AF_INET6 if ":" in laddr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((laddr, lport))
    ls.listen(8)
    print("strip-proxy listening on %s:%d -> %s:%d" % (laddr, lport, uaddr, uport), flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c, uaddr, uport, source), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
