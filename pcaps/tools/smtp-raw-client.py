#!/usr/bin/python3
"""Tiny raw SMTP client for the byte patterns no packaged client sends.

Used by pcaps/make-captures.sh against a real Postfix server, for:

  bdat    EHLO, MAIL, RCPT, then the message as BDAT chunks (RFC 3030),
          ending with "BDAT n LAST".  swaks (Debian 12) has no CHUNKING
          support.  The chunk payloads deliberately contain lines that look
          like SMTP commands ("QUIT", "STARTTLS", a lone ".") and chunk
          boundaries that fall in the middle of a line, so a decoder that
          parses chunk data as commands is caught out.
  inject  EHLO, then "STARTTLS\\r\\n<injected command>\\r\\n" written in ONE
          send() (one TCP segment, TCP_NODELAY), then the TLS handshake and
          a mail transaction inside TLS: the "STARTTLS command injection"
          (CVE-2011-0411 class) byte pattern.
  hostile a session whose client bytes are hostile to anything that logs or
          displays them: "EHLO <name>" where the name holds a bare CR, an
          ANSI colour escape (ESC [31m), double quotes, a backslash, DEL and
          a control byte (0x01), the line still ending in CRLF; if the server
          refuses the EHLO, "HELO <same name>".  Then AUTH PLAIN in the clear
          (no STARTTLS), MAIL, RCPT to a good address, RCPT to an address
          whose domain holds an OSC escape (ESC ]0;pwn BEL), QUIT.  Every
          command is its own write and waits for its reply; whatever the
          server answers, the session goes on.

Only the standard library is used (socket, ssl).  Every exchange is printed
to stdout so the capture script's log shows what happened.
"""
import argparse
import base64
import socket
import ssl
import sys


def show(text):
    """Log-safe form of a line: control bytes, DEL and backslash escaped."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7f:
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    return "".join(out)


class Smtp:
    def __init__(self, server, port, bind, timeout=10.0):
        fam = socket.AF_INET6 if ":" in server else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        if bind:
            self.sock.bind((bind, 0))
        self.sock.connect((server, port))
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the connection")
        self.buf += data

    def reply(self):
        """Read one (possibly multi-line) reply; return (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                self._fill()
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            print("S: " + show(text))
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), lines

    def send(self, data):
        for ln in data.decode("utf-8", "replace").split("\r\n"):
            if ln:
                ln = show(ln)
                print("C: " + (ln if len(ln) < 100 else ln[:100] + "..."))
        self.sock.sendall(data)

    def cmd(self, line, expect=None):
        self.send(line.encode() + b"\r\n")
        code, lines = self.reply()
        if expect is not None and code // 100 != expect:
            raise RuntimeError("unexpected reply to %r: %s" % (line, lines))
        return code, lines

    def starttls(self, ctx, sni):
        if self.buf:
            print("!! %d plaintext byte(s) buffered after STARTTLS reply: %r"
                  % (len(self.buf), self.buf))
            self.buf = b""
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni)
        print("== TLS established: %s %s" % (self.sock.version(),
                                             self.sock.cipher()[0]))


def message(args, subject, nbytes):
    hdr = ("From: <{f}>\r\nTo: <{t}>\r\nSubject: {s}\r\n"
           "Message-ID: <{s2}@{h}>\r\n\r\n").format(
        f=args.mail_from, t=args.rcpt, s=subject,
        s2=subject.replace(" ", "-"), h=args.helo)
    body = []
    i = 0
    while sum(len(x) for x in body) < nbytes:
        body.append("line %04d of the mxwatch test message body, plain ASCII text.\r\n" % i)
        i += 1
    return (hdr + "".join(body)).encode()


def do_bdat(args):
    c = Smtp(args.server, args.port, args.bind)
    c.reply()
    code, lines = c.cmd("EHLO " + args.helo, 2)
    if not any("CHUNKING" in l for l in lines):
        raise RuntimeError("server does not advertise CHUNKING")
    c.cmd("MAIL FROM:<%s>" % args.mail_from, 2)
    c.cmd("RCPT TO:<%s>" % args.rcpt, 2)
    msg = message(args, "bdat chunking test", 1800)
    tricky = (b"A chunk boundary may fall anywhere; these lines are data:\r\n"
              b"QUIT\r\nSTARTTLS\r\nMAIL FROM:<not-a-command@evil.test>\r\n.\r\n"
              b"end of the tricky part\r\n")
    msg = msg + tricky + b"last line of the message\r\n"
    # three chunks; the first boundary splits a line in the middle
    cut1 = 1000
    cut2 = len(msg) - 300
    chunks = [msg[:cut1], msg[cut1:cut2], msg[cut2:]]
    for n, ch in enumerate(chunks):
        last = " LAST" if n == len(chunks) - 1 else ""
        c.send(b"BDAT %d%s\r\n" % (len(ch), last.encode()) + ch)
        code, _ = c.reply()
        if code != 250:
            raise RuntimeError("BDAT refused")
    c.cmd("QUIT", 2)
    c.sock.close()


def do_inject(args):
    c = Smtp(args.server, args.port, args.bind)
    c.reply()
    code, lines = c.cmd("EHLO " + args.helo, 2)
    if not any("STARTTLS" in l for l in lines):
        raise RuntimeError("server does not advertise STARTTLS")
    # STARTTLS and the injected command in one write, one TCP segment
    c.send(b"STARTTLS\r\n" + args.inject.encode() + b"\r\n")
    code, _ = c.reply()
    if code != 220:
        raise RuntimeError("STARTTLS refused")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.cafile:
        ctx.load_verify_locations(args.cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if args.tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    c.starttls(ctx, args.sni)
    try:
        code, _ = c.cmd("EHLO " + args.helo)
        c.cmd("MAIL FROM:<%s>" % args.mail_from, 2)
        c.cmd("RCPT TO:<%s>" % args.rcpt, 2)
        c.cmd("DATA", 3)
        c.send(message(args, "starttls injection test", 600) + b".\r\n")
        c.reply()
        c.cmd("QUIT")
    except (EOFError, RuntimeError, OSError) as e:
        print("!! session ended: %s" % e)
    c.sock.close()


def do_hostile(args):
    name = b'evil\rname\x1b[31m"quoted"\\back\x7fdel\x01ctl'
    auth = base64.b64encode(b"\0" + args.auth_user.encode() + b"\0"
                            + args.auth_password.encode())
    c = Smtp(args.server, args.port, args.bind)
    c.reply()
    steps = [b"EHLO " + name,
             b"AUTH PLAIN " + auth,
             b"MAIL FROM:<a@sender.test>",
             b"RCPT TO:<bob@example.test>",
             b"RCPT TO:<x@evil\x1b]0;pwn\x07.test>",
             b"QUIT"]
    try:
        for line in steps:
            c.send(line + b"\r\n")
            code, _ = c.reply()
            if line.startswith(b"EHLO ") and code // 100 != 2:
                # the same name with HELO, so it is on the wire either way
                c.send(b"HELO " + name + b"\r\n")
                c.reply()
    except EOFError as e:
        print("!! session ended: %s" % e)
    c.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["bdat", "inject", "hostile"])
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--bind", help="local source address")
    ap.add_argument("--helo", default="client.sender.test")
    ap.add_argument("--from", dest="mail_from", default="alice@sender.test")
    ap.add_argument("--to", dest="rcpt", default="bob@example.test")
    ap.add_argument("--inject", default="RSET",
                    help="command written in the same segment as STARTTLS")
    ap.add_argument("--cafile", help="CA to verify the server certificate")
    ap.add_argument("--sni", default=None, help="TLS server name (SNI)")
    ap.add_argument("--tls-max", choices=["1.2", "1.3"], default="1.3")
    ap.add_argument("--auth-user", default="alice@example.test",
                    help="AUTH PLAIN user (hostile mode)")
    ap.add_argument("--auth-password", default="Secret-Passw0rd",
                    help="AUTH PLAIN password (hostile mode)")
    args = ap.parse_args()
    try:
        {"bdat": do_bdat, "inject": do_inject,
         "hostile": do_hostile}[args.mode](args)
    except (EOFError, RuntimeError, OSError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
