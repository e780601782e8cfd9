#!/usr/bin/env python3
"""tshark_facts.py - expected per-session SMTP/TLS facts of a capture, derived
from tshark (Wireshark 4.0, Debian 12) and OpenSSL/hashlib, INDEPENDENTLY of
mxwatch, and a checker that compares mxwatch's "type":"session" records with
them.  Python 3 standard library only.

usage:
  tshark_facts.py facts CAPTURE              facts as JSON lines (one session each)
  tshark_facts.py write-golden CAPTURE...    write tests/golden/<basename>.json
  tshark_facts.py check MXWATCH CAPTURE...   run MXWATCH analyze --json CAPTURE and
                                             compare field by field; ends with
                                             "N passed, N failed" (captures)

Where every fact comes from
---------------------------
tshark runs twice per capture, always with explicit reassembly preferences
(tcp.desegment_tcp_streams, tcp.reassemble_out_of_order, tls.desegment_ssl_records,
tls.desegment_ssl_application_data, smtp.desegment_lines, smtp.desegment_data = TRUE)
so a personal Wireshark profile cannot change the result.

Pass 1, `-T fields` over every TCP frame: frame.number, frame.time_epoch,
  tcp.stream, ip.src/ipv6.src, tcp.srcport, tcp.dstport, tcp.flags.syn,
  tcp.flags.ack, tcp.len, frame.protocols, tcp.payload.
  -> client/server: the sender of the SYN without ACK is the client; without a
     SYN, the side whose first payload is "220" is the server; else the lower
     port.  ts_start/ts_end: frame.time_epoch of the stream's first/last frame.
  -> decode-as: a stream whose first server payload starts with "220" and whose
     first client payload starts with EHLO/HELO, but which tshark did not
     dissect as smtp (e.g. port 2525), gets `-d tcp.port==<server port>,smtp`
     for pass 2.
  -> which streams are sessions: every stream in which pass 2 shows an SMTP
     command line or reply (after decode-as); plus streams to server port 465 (implicit TLS, RFC 8314)
     that carry TLS: those are marked "_optional" (mxwatch may or may not report
     them) and have no "smtp" facts.

Pass 2, `-T pdml` (XML, parsed with xml.etree) of frames matching "smtp || tls",
  walked in frame order and, inside a frame, in document order:
  SMTP (proto "smtp"; a line is taken from the field's hex "value", not "show"):
    smtp.command_line           client command lines.  The verb and argument are
                                split here, not taken from smtp.req.command /
                                smtp.req.parameter: tshark 4.0 splits "STARTTLS"
                                into command "STAR" + parameter "TLS".
    smtp.response, its children smtp.response.code and smtp.rsp.parameter
                                server replies (one element per reply; every
                                line of a multi-line reply is one rsp.parameter).
    Replies are paired with commands in order (pipelining); a 334 or 354 reply
    keeps its command waiting for the next reply (AUTH exchange, DATA body).
    greeting_host     first word of the first rsp.parameter of the first server
                      reply, when it arrives before any client command, or
                      whenever the stream's SYN was captured: RFC 5321 3.1
                      makes the greeting the server's first reply, and with
                      early pipelining (Exim's PIPE_CONNECT) the client's
                      EHLO (and more) precede it; replies pair with commands
                      after it
                      reply, when it arrives before any client command
    helo_name, ehlo   the last HELO/EHLO of the cleartext dialogue that got a
                      2xx reply (else the last one sent); ehlo = verb is EHLO
    starttls.offered  a rsp.parameter whose first word is STARTTLS in the 2xx
                      reply to the last accepted cleartext EHLO; null when no
                      EHLO reply was seen (HELO sessions: nothing was offered or
                      withheld, so it is not a fact)
    starttls.mangled_token  when not offered: the first capability word of
                      exactly 8 characters that is not a registered/common ESMTP
                      keyword (e.g. XXXXXXXA); else null
    starttls.requested      a cleartext STARTTLS command line
    starttls.reply_code     smtp.response.code of the reply paired with STARTTLS
    auth_before_tls   an AUTH command line in cleartext
    mail_from_domain  domain (lowercase) of the first cleartext MAIL FROM; null
                      for <> or when there is none
    rcpt_domains      sorted unique lowercase domains of cleartext RCPT TO
    plaintext_transaction  a MAIL FROM command line in cleartext
    The cleartext dialogue = command lines tshark dissects as SMTP (after "220"
    to STARTTLS tshark hands the stream to TLS, so the encrypted dialogue never
    shows up), up to and including the first STARTTLS the server accepted (220,
    or no reply seen but TLS records follow).  Cleartext lines after that
    STARTTLS are not part of it: lines pipelined behind it (command injection,
    smtp-injection.pcap) or sent after a failed handshake (the client of
    smtp-tls-failed-fallback.pcap sends MAIL FROM in clear after the alert, and
    the server resets) are listed in "_notes" instead.  A refused STARTTLS
    (454) does not end the dialogue.  With only the client direction captured
    the rule still works (no replies needed before the cut).
  TLS (proto "tls": tls.record > tls.handshake):
    tls is null when the stream carries no TLS record at all.
    sni        tls.handshake.extensions_server_name of the ClientHello (type 1)
    version    of the last ServerHello (type 2): its
               tls.handshake.extensions.supported_version if present, else
               tls.handshake.version; 0x0300 SSLv3, 0x0301 TLSv1.0, 0x0302
               TLSv1.1, 0x0303 TLSv1.2, 0x0304 TLSv1.3
    cipher     IANA name from the "showname" of tls.handshake.ciphersuite
               ("Cipher Suite: TLS_... (0xc030)"); left out when tshark does not
               know the suite
    certs      every tls.handshake.certificate (hex DER in "value") of the
               server's Certificate message (type 11): sha256 = hashlib over the
               DER; spki_sha256 = sha256 of `openssl x509 -pubkey | openssl pkey
               -pubin -outform DER`; subject/issuer (-nameopt RFC2253), san,
               not_before/not_after (RFC 3339 UTC) from `openssl x509 -inform DER`
    certs_observable  false for TLS 1.3 (Certificate is encrypted) and for a
               resumed TLS <= 1.2 session (ServerHello echoes the ClientHello's
               non-empty session_id); true for a full TLS <= 1.2 handshake (an
               anonymous suite then has certs []); left out when there was no
               ServerHello
    handshake_complete  ServerHello seen, no cleartext fatal alert before the
               end of the handshake, and: TLS 1.3 a client record of
               tls.record.opaque_type 23 after the ServerHello (its encrypted
               Finished); TLS <= 1.2 a record of tls.record.content_type 20
               (ChangeCipherSpec) from both sides
    alert      first cleartext alert: tls.alert_message.desc mapped to the RFC
               name (e.g. "handshake_failure"); encrypted alerts are not facts;
               null when none
Fields whose name starts with "_" (_notes, _optional, _tcp_stream) are
informational and never compared.  Fields tshark cannot give (bytes, id,
anomalies, ...) are absent from the facts, and an absent field is not compared.
"""
import calendar
import collections
import decimal
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_DIR = os.path.join(HERE, "golden")

PREFS = []
for _p in ("tcp.desegment_tcp_streams:TRUE", "tcp.reassemble_out_of_order:TRUE",
           "tls.desegment_ssl_records:TRUE", "tls.desegment_ssl_application_data:TRUE",
           "smtp.desegment_lines:TRUE", "smtp.desegment_data:TRUE"):
    PREFS += ["-o", _p]

SMTPS_PORT = 465

TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1.0", 0x0302: "TLSv1.1",
                0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}

ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
          40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
          43: "unsupported_certificate", 44: "certificate_revoked",
          45: "certificate_expired", 46: "certificate_unknown", 47: "illegal_parameter",
          48: "unknown_ca", 49: "access_denied", 50: "decode_error", 51: "decrypt_error",
          60: "export_restriction", 70: "protocol_version", 71: "insufficient_security",
          80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
          100: "no_renegotiation", 109: "missing_extension", 110: "unsupported_extension",
          111: "certificate_unobtainable", 112: "unrecognized_name",
          113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
          115: "unknown_psk_identity", 116: "certificate_required",
          120: "no_application_protocol"}

# ESMTP keywords (IANA "SMTP Service Extensions" registry plus common vendor
# ones) - a capability word of 8 characters not in here stands where STARTTLS
# would be when a middlebox overwrote it (XXXXXXXA and the like).
KNOWN_EXTENSIONS = {
    "SEND", "SOML", "SAML", "EXPN", "HELP", "TURN", "8BITMIME", "SIZE", "VERB",
    "ONEX", "CHUNKING", "BINARYMIME", "CHECKPOINT", "DELIVERBY", "PIPELINING",
    "DSN", "ETRN", "ENHANCEDSTATUSCODES", "STARTTLS", "NO-SOLICITING", "MTRK",
    "ATRN", "AUTH", "BURL", "FUTURERELEASE", "CONPERM", "CONNEG", "SMTPUTF8",
    "MT-PRIORITY", "RRVS", "REQUIRETLS", "LIMITS", "VRFY", "UTF8SMTP", "XCLIENT",
    "XFORWARD", "XEXCH50", "X-EXPS", "XUSR", "X-LINK2STATE", "XADR", "XSTA",
    "XCIR", "XGEN", "X-ANONYMOUSTLS", "XRDST", "XSHADOW", "XSHADOWREQUEST",
    "XOORG", "CLIENTID", "XVERP", "XQUE", "XDFN", "X-TURNME", "X-RCPTLIMIT",
    "X-ADAT", "X-DRCP", "X-ERCP", "XTRN", "XLOOP", "XAUTH", "XONEX", "X-LOCAL",
}


class CaptureError(Exception):
    pass


def warn(msg):
    print("tshark_facts: " + msg, file=sys.stderr)


# ------------------------------------------------------------------ helpers

def rfc3339(epoch_text):
    """tshark frame.time_epoch ("1795443598.472280000") -> RFC 3339 UTC."""
    d = decimal.Decimal(epoch_text)
    sec = int(d.to_integral_value(rounding=decimal.ROUND_FLOOR))
    ns = int((d - sec) * 1000000000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if ns % 1000 == 0:
        return "%s.%06dZ" % (base, ns // 1000)
    return "%s.%09dZ" % (base, ns)


_TS_RE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$",
                    re.I)


def parse_time(text):
    """RFC 3339 string -> Decimal epoch seconds (None if unparsable)."""
    if not isinstance(text, str):
        return None
    m = _TS_RE.match(text.strip())
    if not m:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    sec = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    val = decimal.Decimal(sec) + (decimal.Decimal("0" + m.group(7)) if m.group(7) else 0)
    tz = m.group(8)
    if tz and tz.upper() != "Z":
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        val -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return val


def hex_or_show(field):
    """Bytes of a PDML field: its hex "value" when present, else "show"."""
    v = field.get("value")
    if v is not None and re.fullmatch(r"(?:[0-9a-fA-F]{2})*", v):
        return bytes.fromhex(v)
    return (field.get("show") or "").encode("utf-8", "replace")


def text(b):
    return b.decode("utf-8", "replace")


def addr_domain(arg):
    """Domain of the path in a MAIL FROM:/RCPT TO: argument (lowercase), or None."""
    arg = arg.strip()
    if arg.startswith("<"):
        end = arg.find(">")
        path = arg[1:end] if end >= 0 else arg[1:]
    else:
        path = arg.split()[0] if arg.split() else ""
    if path.startswith("@") and ":" in path:       # source route @a,@b:user@dom
        path = path.split(":", 1)[1]
    if "@" not in path:
        return None
    dom = path.rsplit("@", 1)[1].strip().lower()
    return dom or None


def fields_under(elem, stop_at_proto=True):
    """Document-order walk of <field> elements below elem, not entering nested
    <proto> elements (e.g. imf inside smtp)."""
    for child in elem:
        if child.tag == "proto" and stop_at_proto:
            continue
        if child.tag == "field":
            yield child
        yield from fields_under(child, stop_at_proto)


def first_desc(elem, name):
    for f in elem.iter("field"):
        if f.get("name") == name:
            return f
    return None


def run(args, **kw):
    return subprocess.run(args, capture_output=True, **kw)


# ------------------------------------------------------------------ pass 1: TCP streams

class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.frames = []            # (frame number, (ip, port) of sender)
        self.first_ts = None
        self.last_ts = None
        self.syn_from = None
        self.first_payload = {}     # endpoint -> first payload bytes (prefix)
        self.first_payload_from = None
        self.protocols = set()
        self.endpoints = []
        self.client = None
        self.server = None


def tcp_streams(cap):
    args = ["tshark", "-r", cap, "-n"] + PREFS + [
        "-Y", "tcp && !icmp && !icmpv6", "-T", "fields", "-E", "separator=/t",
        "-E", "occurrence=l", "-E", "header=n"]
    for f in ("frame.number", "frame.time_epoch", "tcp.stream", "ip.src", "ipv6.src",
              "ip.dst", "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.flags.syn",
              "tcp.flags.ack", "tcp.len", "frame.protocols", "tcp.payload"):
        args += ["-e", f]
    p = run(args, text=True)
    msg = "\n".join(l for l in p.stderr.splitlines()
                    if l.strip() and not l.startswith("Running as user"))
    if p.returncode != 0:
        if not p.stdout:
            raise CaptureError("tshark failed on %s: %s" % (cap, msg))
        warn("%s: tshark exit %d (%s); using what it read" % (cap, p.returncode, msg))
    streams = {}
    frame_dir = {}
    for line in p.stdout.splitlines():
        cols = line.split("\t")
        if len(cols) < 14 or not cols[2]:
            continue
        (num, ts, sid, ip4, ip6, dip4, dip6, sport, dport, syn, ack, tlen, protos,
         payload) = cols[:14]
        sid = int(sid)
        src = (str(ipaddress.ip_address(ip4 or ip6)), int(sport))
        dst = (str(ipaddress.ip_address(dip4 or dip6)), int(dport))
        st = streams.get(sid)
        if st is None:
            st = streams[sid] = Stream(sid)
        st.frames.append(int(num))
        frame_dir[int(num)] = (sid, src)
        if st.first_ts is None:
            st.first_ts = ts
        st.last_ts = ts
        for ep in (src, dst):
            if ep not in st.endpoints:
                st.endpoints.append(ep)
        if syn in ("1", "True") and st.syn_from is None:
            # SYN comes from the client, SYN+ACK from the server
            st.syn_from = src if ack in ("0", "False") else dst
        if tlen and int(tlen) > 0 and src not in st.first_payload and payload:
            st.first_payload[src] = bytes.fromhex(payload[:64].replace(":", ""))
            if st.first_payload_from is None:
                st.first_payload_from = src
        st.protocols.update(protos.split(":"))
    for st in streams.values():
        if st.syn_from is not None:
            st.client = st.syn_from
        else:
            greeter = [e for e in st.endpoints
                       if st.first_payload.get(e, b"")[:3] == b"220"]
            if greeter and len(st.endpoints) == 2:
                st.client = next((e for e in st.endpoints if e != greeter[0]), None)
            else:
                st.client = max(st.endpoints, key=lambda e: e[1])
        st.server = next((e for e in st.endpoints if e != st.client), None)
    return streams, frame_dir


def looks_like_smtp(st):
    if st.client is None or st.server is None:
        return False
    s = st.first_payload.get(st.server, b"")
    c = st.first_payload.get(st.client, b"")
    return s[:3] == b"220" and c[:5].upper() in (b"EHLO ", b"HELO ")


# ------------------------------------------------------------------ pass 2: PDML

def pdml_packets(cap, decode_ports):
    args = ["tshark", "-r", cap, "-n"] + PREFS
    for port in sorted(decode_ports):
        args += ["-d", "tcp.port==%d,smtp" % port]
    args += ["-Y", "smtp || tls", "-T", "pdml"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        rc = subprocess.run(args, stdout=out, stderr=err).returncode
        out.seek(0)
        if rc != 0:
            err.seek(0)
            msg = "\n".join(l for l in err.read().decode("utf-8", "replace").splitlines()
                            if l.strip() and not l.startswith("Running as user"))
            warn("%s: tshark (pdml) exit %d: %s" % (cap, rc, msg.splitlines()[-1] if msg else ""))
        try:
            for _event, elem in ET.iterparse(out, events=("end",)):
                if elem.tag == "packet":
                    yield elem
                    elem.clear()
        except ET.ParseError as e:
            if rc == 0:
                raise CaptureError("%s: unparsable PDML from tshark: %s" % (cap, e))
            warn("%s: PDML cut short (%s); using what was read" % (cap, e))


def packet_events(pkt):
    """(frame number, [events]) of one PDML packet, in document order.
    events: ("cmd", line) ("rsp", code, params) ("tls", record dict)"""
    num = None
    events = []
    for proto in pkt.iter("proto"):
        name = proto.get("name")
        if name == "geninfo":
            for f in proto:
                if f.get("name") == "num":
                    num = int(f.get("show"))
        elif name == "frame" and num is None:
            f = first_desc(proto, "frame.number")
            if f is not None:
                num = int(f.get("show"))
        elif name == "smtp":
            for f in fields_under(proto):
                fname = f.get("name")
                if fname == "smtp.command_line":
                    events.append(("cmd", text(hex_or_show(f)).rstrip("\r\n")))
                elif fname == "smtp.response":
                    code = None
                    params = []
                    for c in f:
                        if c.get("name") == "smtp.response.code":
                            try:
                                code = int(c.get("show"))
                            except (TypeError, ValueError):
                                code = None
                        elif c.get("name") == "smtp.rsp.parameter":
                            params.append(text(hex_or_show(c)))
                    first = text(hex_or_show(f)).rstrip("\r\n")
                    events.append(("rsp", code, params, first))
        elif name == "tls":
            for rec in proto:
                if rec.get("name") != "tls.record":
                    continue
                events.append(("tls", tls_record(rec)))
    return num, events


def tls_record(rec):
    r = {"content_type": None, "handshakes": [], "alert": None}
    for f in rec:
        n = f.get("name")
        if n in ("tls.record.content_type", "tls.record.opaque_type"):
            # TLS 1.3 encrypted records carry an "opaque_type" (23) instead
            r["content_type"] = int(f.get("show"))
        elif n == "tls.handshake":
            r["handshakes"].append(tls_handshake(f))
        elif n == "tls.alert_message":
            lvl = desc = None
            for c in f:
                if c.get("name") == "tls.alert_message.level":
                    lvl = int(c.get("show"))
                elif c.get("name") == "tls.alert_message.desc":
                    desc = int(c.get("show"))
            if desc is not None:
                r["alert"] = (lvl, desc)
    return r


def tls_handshake(h):
    d = {"type": None}
    for f in h:
        if f.get("name") == "tls.handshake.type":
            d["type"] = int(f.get("show"))
            break
    t = d["type"]
    if t == 1:
        sni = first_desc(h, "tls.handshake.extensions_server_name")
        d["sni"] = sni.get("show") if sni is not None else None
        sid = first_desc(h, "tls.handshake.session_id")
        d["session_id"] = sid.get("value") if sid is not None else ""
    elif t == 2:
        v = first_desc(h, "tls.handshake.version")
        d["version"] = int(v.get("show"), 16) if v is not None else None
        sv = first_desc(h, "tls.handshake.extensions.supported_version")
        d["supported_version"] = int(sv.get("show"), 16) if sv is not None else None
        cs = first_desc(h, "tls.handshake.ciphersuite")
        d["cipher"] = None
        d["cipher_code"] = None
        if cs is not None:
            d["cipher_code"] = cs.get("show")
            m = re.match(r"^Cipher Suite: ([A-Za-z0-9_]+) \((0x[0-9a-fA-F]+)\)$",
                         cs.get("showname") or "")
            if m and m.group(1) != "Unknown" and re.match(r"^(TLS|SSL)_", m.group(1)):
                d["cipher"] = m.group(1)
        sid = first_desc(h, "tls.handshake.session_id")
        d["session_id"] = sid.get("value") if sid is not None else ""
    elif t == 11:
        d["certs"] = [bytes.fromhex(f.get("value")) for f in h.iter("field")
                      if f.get("name") == "tls.handshake.certificate" and f.get("value")]
    return d


# ------------------------------------------------------------------ certificates

def cert_facts(der):
    env = dict(os.environ, LC_ALL="C", TZ="UTC")
    p = run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-issuer",
             "-startdate", "-enddate", "-ext", "subjectAltName", "-nameopt", "RFC2253"],
            input=der, env=env)
    out = p.stdout.decode("utf-8", "replace")
    facts = {"subject": None, "issuer": None, "san": [], "not_before": None,
             "not_after": None, "sha256": hashlib.sha256(der).hexdigest(),
             "spki_sha256": None}
    if p.returncode != 0:
        warn("openssl cannot parse a certificate (sha256 %s): %s"
             % (facts["sha256"], p.stderr.decode(errors="replace").strip()))
        return facts
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("subject="):
            facts["subject"] = line[len("subject="):].strip()
        elif line.startswith("issuer="):
            facts["issuer"] = line[len("issuer="):].strip()
        elif line.startswith("notBefore="):
            facts["not_before"] = openssl_date(line.split("=", 1)[1])
        elif line.startswith("notAfter="):
            facts["not_after"] = openssl_date(line.split("=", 1)[1])
        elif "Subject Alternative Name" in line and i + 1 < len(lines):
            for item in lines[i + 1].strip().split(", "):
                kind, _, val = item.partition(":")
                kind = kind.strip()
                if kind == "DNS":
                    facts["san"].append(val.strip())
                elif kind == "IP Address":
                    facts["san"].append("IP:" + val.strip())
                elif item.strip():
                    facts["san"].append(item.strip())
    pk = run(["openssl", "x509", "-inform", "DER", "-noout", "-pubkey"], input=der)
    if pk.returncode == 0:
        spki = run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pk.stdout)
        if spki.returncode == 0 and spki.stdout:
            facts["spki_sha256"] = hashlib.sha256(spki.stdout).hexdigest()
    if facts["spki_sha256"] is None:
        warn("openssl cannot extract the public key of certificate %s" % facts["sha256"])
        del facts["spki_sha256"]
    return facts


def openssl_date(s):
    s = " ".join(s.split())
    try:
        t = time.strptime(s, "%b %d %H:%M:%S %Y GMT")
    except ValueError:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t)


# ------------------------------------------------------------------ per-session facts

def smtp_facts(events, notes, syn_seen=False):
    """events: list of (dir, event) with dir "c"/"s" in wire order; syn_seen:
    the stream's first packets were captured."""
    # pass 1: commands (in order) paired with the code of their reply
    greeting_host = None
    seen_any = False
    first_rsp = True
    pending = collections.deque()
    cmds = []               # dicts: verb, arg, line, code, params, pos
    for pos, (d, ev) in enumerate(events):
        if ev[0] == "cmd":
            seen_any = True
            parts = ev[1].strip().split(None, 1)
            c = {"verb": parts[0].upper() if parts else "",
                 "arg": parts[1].strip() if len(parts) > 1 else "",
                 "line": ev[1], "code": None, "params": [], "pos": pos}
            cmds.append(c)
            pending.append(c)
        elif ev[0] == "rsp":
            _, code, params, _first = ev
            greeting = not seen_any or (syn_seen and first_rsp)
            first_rsp = False
            if greeting:
                if seen_any:
                    notes.append("client spoke before the greeting (early pipelining)")
                seen_any = True
                if params:
                    w = params[0].split()
                    greeting_host = w[0] if w else None
                continue
            if not pending:
                continue
            c = pending.popleft()
            if code in (334, 354):      # AUTH exchange / DATA body: one more reply
                pending.appendleft(c)
                continue
            c["code"] = code
            c["params"] = params
    # the cleartext dialogue ends at the first STARTTLS the server accepted
    # (220, or no reply seen but TLS records follow)
    tls_pos = [pos for pos, (_, ev) in enumerate(events) if ev[0] == "tls"]
    cut = None
    for c in cmds:
        if c["verb"] == "STARTTLS" and (
                c["code"] == 220
                or (c["code"] is None and any(p > c["pos"] for p in tls_pos))):
            cut = c
            break
    dialogue = [c for c in cmds if cut is None or c["pos"] <= cut["pos"]]
    if cut is not None:
        later = [c for c in cmds if c["pos"] > cut["pos"]]
        first_tls = min([p for p in tls_pos if p > cut["pos"]], default=None)
        injected = [c["line"] for c in later if first_tls is None or c["pos"] < first_tls]
        after = [c["line"] for c in later if first_tls is not None and c["pos"] > first_tls]
        if injected:
            notes.append("cleartext pipelined behind the accepted STARTTLS (injection),"
                         " not part of the dialogue: " + " | ".join(injected))
        if after:
            notes.append("cleartext commands after the TLS attempt, not part of the"
                         " dialogue: " + " | ".join(after))
    requested = any(c["verb"] == "STARTTLS" for c in dialogue)
    reply_code = next((c["code"] for c in dialogue if c["verb"] == "STARTTLS"), None)
    if cut is not None:
        reply_code = cut["code"]
    helos = [c for c in dialogue if c["verb"] in ("HELO", "EHLO")]
    ehlos_ok = [c for c in helos if c["verb"] == "EHLO" and c["code"] is not None
                and 200 <= c["code"] < 300]
    ehlo_caps = None
    if ehlos_ok:
        ehlo_caps = [p.split()[0] for p in ehlos_ok[-1]["params"][1:] if p.split()]
    auth = any(c["verb"] == "AUTH" for c in dialogue)
    mail_domains = []
    rcpts = set()
    for c in dialogue:
        if c["verb"] == "MAIL":
            m = re.match(r"^FROM\s*:\s*(.*)$", c["arg"], re.I)
            mail_domains.append(addr_domain(m.group(1)) if m else None)
        elif c["verb"] == "RCPT":
            m = re.match(r"^TO\s*:\s*(.*)$", c["arg"], re.I)
            dom = addr_domain(m.group(1)) if m else None
            if dom:
                rcpts.add(dom)
    mail_seen = bool(mail_domains)
    accepted = [h for h in helos if h["code"] is not None and 200 <= h["code"] < 300]
    helo = accepted[-1] if accepted else (helos[-1] if helos else None)
    offered = None
    mangled = None
    if ehlo_caps is not None:
        upper = [c.upper() for c in ehlo_caps]
        offered = "STARTTLS" in upper
        if not offered:
            for c in ehlo_caps:
                if len(c) == 8 and c.upper() not in KNOWN_EXTENSIONS:
                    mangled = c
                    break
    return {
        "greeting_host": greeting_host,
        "helo_name": (helo["arg"] or None) if helo else None,
        "ehlo": (helo["verb"] == "EHLO") if helo else None,
        "starttls": {"offered": offered, "mangled_token": mangled,
                     "requested": requested, "reply_code": reply_code},
        "auth_before_tls": auth,
        "mail_from_domain": mail_domains[0] if mail_domains else None,
        "rcpt_domains": sorted(rcpts),
        "plaintext_transaction": mail_seen,
    }


def tls_facts(events, notes):
    recs = [(d, ev[1]) for d, ev in events if ev[0] == "tls"]
    if not recs:
        return None
    ch = None
    sh = None
    sh_index = None
    certs = None
    alert = None
    alert_before_done = False
    ccs = {"c": False, "s": False}
    client_appdata_after_sh = False
    for i, (d, r) in enumerate(recs):
        for h in r["handshakes"]:
            if h["type"] == 1 and d == "c" and ch is None:
                ch = h
            elif h["type"] == 2 and d == "s":
                sh = h
                sh_index = i
            elif h["type"] == 11 and d == "s" and certs is None:
                certs = h["certs"]
        if r["alert"] is not None and alert is None:
            alert = r["alert"]
            lvl = r["alert"][0]
            done_now = handshake_done(sh, ccs, client_appdata_after_sh)
            if lvl == 2 and not done_now:
                alert_before_done = True
        if r["content_type"] == 20 and sh is not None:
            ccs[d] = True
        if r["content_type"] == 23 and d == "c" and sh is not None and i > sh_index:
            client_appdata_after_sh = True
    facts = {}
    if sh is not None:
        ver = sh["supported_version"] or sh["version"]
        facts["version"] = TLS_VERSIONS.get(ver, "0x%04x" % ver if ver is not None else None)
        if sh["cipher"]:
            facts["cipher"] = sh["cipher"]
        else:
            notes.append("tshark does not name cipher suite %s" % sh["cipher_code"])
    else:
        facts["version"] = None
        facts["cipher"] = None
    if ch is not None:
        facts["sni"] = ch["sni"]
    else:
        notes.append("no ClientHello in the capture: sni not known")
    facts["handshake_complete"] = (not alert_before_done
                                   and handshake_done(sh, ccs, client_appdata_after_sh))
    facts["alert"] = ALERTS.get(alert[1], str(alert[1])) if alert else None
    ver = facts.get("version")
    if sh is None:
        facts["certs"] = []
        notes.append("no ServerHello: certs_observable not a fact")
    elif ver == "TLSv1.3":
        facts["certs"] = []
        facts["certs_observable"] = False
    else:
        resumed = bool(ch and ch.get("session_id") and sh.get("session_id")
                       and ch["session_id"] == sh["session_id"])
        if resumed:
            facts["certs"] = []
            facts["certs_observable"] = False
            notes.append("TLS session resumption: no Certificate message")
        else:
            facts["certs"] = [cert_facts(c) for c in (certs or [])]
            facts["certs_observable"] = True
            if certs is None:
                notes.append("full TLS <= 1.2 handshake without a Certificate message"
                             " (anonymous suite?)")
    order = ["version", "cipher", "sni", "handshake_complete", "alert", "certs",
             "certs_observable"]
    return {k: facts[k] for k in order if k in facts}


def handshake_done(sh, ccs, client_appdata):
    if sh is None:
        return False
    ver = sh["supported_version"] or sh["version"]
    if ver == 0x0304:
        return client_appdata
    return ccs["c"] and ccs["s"]


def ep_json(ep):
    return {"ip": ep[0], "port": ep[1]} if ep else None


def capture_facts(cap):
    if not os.path.exists(cap):
        raise CaptureError("%s: no such file" % cap)
    streams, frame_dir = tcp_streams(cap)
    decode = set()
    for st in streams.values():
        if "smtp" not in st.protocols and looks_like_smtp(st):
            decode.add(st.server[1])
    per_stream = collections.defaultdict(list)
    smtp_streams = set()
    for pkt in pdml_packets(cap, decode):
        num, events = packet_events(pkt)
        if num is None or num not in frame_dir:
            continue
        sid, src = frame_dir[num]
        st = streams[sid]
        d = "c" if src == st.client else "s"
        for ev in events:
            if ev[0] in ("cmd", "rsp"):
                smtp_streams.add(sid)
            per_stream[sid].append((d, ev))
    sessions = []
    for sid in sorted(streams):
        st = streams[sid]
        optional = False
        if sid not in smtp_streams:
            if (st.server and st.server[1] == SMTPS_PORT
                    and any(ev[0] == "tls" for _, ev in per_stream[sid])):
                optional = True
            else:
                continue
        notes = []
        s = collections.OrderedDict()
        s["type"] = "session"
        s["ts_start"] = rfc3339(st.first_ts)
        s["ts_end"] = rfc3339(st.last_ts)
        s["client"] = ep_json(st.client)
        s["server"] = ep_json(st.server)
        if optional:
            notes.append("implicit TLS on port %d: no cleartext SMTP, smtp facts not compared"
                         % SMTPS_PORT)
        else:
            s["smtp"] = smtp_facts(per_stream[sid], notes, st.syn_from is not None)
        s["tls"] = tls_facts(per_stream[sid], notes)
        if st.server and st.server[1] in decode:
            notes.append("tshark decode-as tcp.port==%d,smtp" % st.server[1])
        s["_tcp_stream"] = sid
        if optional:
            s["_optional"] = True
        if notes:
            s["_notes"] = notes
        sessions.append(s)
    sessions.sort(key=lambda s: (parse_time(s["ts_start"]),
                                 s["client"]["port"] if s["client"] else 0))
    return sessions


# ------------------------------------------------------------------ golden files

def golden_path(cap):
    return os.path.join(GOLDEN_DIR, os.path.basename(cap) + ".json")


def dump_golden(sessions):
    return json.dumps(sessions, indent=2, ensure_ascii=False) + "\n"


def cmd_facts(caps):
    for cap in caps:
        for s in capture_facts(cap):
            print(json.dumps(s, ensure_ascii=False))
    return 0


def cmd_write_golden(caps):
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    written = {}
    rc = 0
    for cap in caps:
        path = golden_path(cap)
        try:
            text_ = dump_golden(capture_facts(cap))
        except CaptureError as e:
            warn(str(e))
            rc = 1
            continue
        if path in written:
            if written[path][1] != text_:
                warn("%s and %s share the basename %s but give different facts; not written"
                     % (written[path][0], cap, os.path.basename(path)))
                rc = 1
            else:
                print("same facts as %s: %s" % (written[path][0], cap))
            continue
        written[path] = (cap, text_)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text_)
        n = text_.count('"type": "session"')
        print("wrote %s (%d session%s)" % (os.path.relpath(path), n, "" if n == 1 else "s"))
    return rc


# ------------------------------------------------------------------ comparison

DN_ALIASES = {"COMMONNAME": "CN", "ORGANIZATIONNAME": "O", "ORGANIZATIONALUNITNAME": "OU",
              "COUNTRYNAME": "C", "LOCALITYNAME": "L", "STATEORPROVINCENAME": "ST",
              "S": "ST", "STREETADDRESS": "STREET", "DOMAINCOMPONENT": "DC",
              "EMAIL": "EMAILADDRESS", "E": "EMAILADDRESS", "USERID": "UID",
              "SERIALNUMBER": "SERIALNUMBER"}


def dn_parts(dn):
    """Order-insensitive form of a DN in RFC 2253, OpenSSL oneline ("/O=x/CN=y")
    or OpenSSL default ("O = x, CN = y") notation."""
    if not isinstance(dn, str):
        return None
    s = dn.strip()
    sep = "/" if s.startswith("/") else ","
    parts, cur, esc = [], "", False
    for ch in s.lstrip("/") if sep == "/" else s:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == sep or (sep == "," and ch == "+"):
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if not p.strip():
            continue
        k, _, v = p.partition("=")
        k = k.strip().upper()
        out.append((DN_ALIASES.get(k, k), v.strip()))
    return sorted(out)


def norm_alert(v):
    if v is None:
        return None
    if isinstance(v, dict):
        for key in ("description", "desc", "name", "alert", "code"):
            if key in v:
                return norm_alert(v[key])
        return json.dumps(v, sort_keys=True)
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return ALERTS.get(v, str(v))
    s = str(v).strip().lower().replace("-", "_").replace(" ", "_")
    if s.isdigit():
        return ALERTS.get(int(s), s)
    return s


def norm_san(v):
    if not isinstance(v, list):
        return v
    out = []
    for x in v:
        if isinstance(x, str) and x.upper().startswith("DNS:"):
            x = x[4:]
        out.append(x.lower() if isinstance(x, str) else x)
    return sorted(out, key=str)


def same(field, exp, got):
    leaf = field.rsplit(".", 1)[-1]
    leaf = re.sub(r"\[\d+\]$", "", leaf)
    if leaf in ("ts_start", "ts_end", "not_before", "not_after"):
        if exp is None or got is None:
            return exp == got
        a, b = parse_time(exp), parse_time(got)
        return a is not None and b is not None and abs(a - b) <= decimal.Decimal("0.000001")
    if leaf in ("subject", "issuer"):
        if exp is None or got is None:
            return exp == got
        return dn_parts(exp) == dn_parts(got)
    if leaf == "alert":
        return norm_alert(exp) == norm_alert(got)
    if leaf == "san":
        return norm_san(exp) == norm_san(got)
    if leaf == "rcpt_domains":
        if isinstance(exp, list) and isinstance(got, list):
            return sorted(set(exp)) == sorted(set(x.lower() if isinstance(x, str) else x
                                                  for x in got))
        return exp == got
    if leaf == "ip":
        try:
            return ipaddress.ip_address(exp) == ipaddress.ip_address(got)
        except (ValueError, TypeError):
            return exp == got
    if isinstance(exp, bool) or isinstance(got, bool):
        return type(exp) is type(got) and exp == got
    return exp == got


MISSING = object()


def compare(exp, got, path, diffs):
    """Every key of exp (not starting with "_") must be present and equal in got."""
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            diffs.append((path, exp, got))
            return
        for k, v in exp.items():
            if k.startswith("_"):
                continue
            sub = "%s.%s" % (path, k) if path else k
            if k not in got:
                diffs.append((sub, v, MISSING))
            else:
                compare(v, got[k], sub, diffs)
    elif isinstance(exp, list) and path.rsplit(".", 1)[-1] == "certs":
        if not isinstance(got, list) or len(got) != len(exp):
            diffs.append((path + " (count)", len(exp),
                          len(got) if isinstance(got, list) else got))
            if not isinstance(got, list):
                return
        for i, (e, g) in enumerate(zip(exp, got)):
            compare(e, g, "%s[%d]" % (path, i), diffs)
    else:
        if not same(path, exp, got):
            diffs.append((path, exp, got))


def show(v):
    if v is MISSING:
        return "<missing>"
    s = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return s if len(s) <= 300 else s[:297] + "..."


def ep_key(ep):
    if not isinstance(ep, dict):
        return None
    try:
        return (str(ipaddress.ip_address(ep.get("ip"))), int(ep.get("port")))
    except (ValueError, TypeError):
        return (str(ep.get("ip")), ep.get("port"))


def label(s):
    def one(ep):
        if not ep:
            return "?"
        ip, port = ep
        return ("[%s]:%s" % (ip, port)) if ":" in ip else ("%s:%s" % (ip, port))
    return "%s>%s" % (one(ep_key(s.get("client"))), one(ep_key(s.get("server"))))


def mxwatch_sessions(mxwatch, cap):
    p = run([mxwatch, "analyze", "--json", cap], text=True)
    problems = []
    if p.returncode not in (0, 1):
        problems.append("mxwatch exit %d: %s" % (p.returncode, p.stderr.strip()[-500:]))
    out = []
    for n, line in enumerate(p.stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            problems.append("mxwatch output line %d is not JSON: %s" % (n, line[:120]))
            continue
        if isinstance(rec, dict) and rec.get("type") == "session":
            out.append(rec)
    return out, problems


def check_capture(mxwatch, cap):
    name = os.path.basename(cap)
    lines = []
    fresh = capture_facts(cap)
    gpath = golden_path(cap)
    if os.path.exists(gpath):
        with open(gpath, encoding="utf-8") as f:
            expected = json.load(f)
        # A golden may correct a fact tshark gets wrong ("_overrides": dotted
        # paths, each explained in "_notes"); the rest must still equal what
        # tshark derives today.
        def without_overrides(sessions):
            sessions = json.loads(json.dumps(sessions))
            for sess in sessions:
                for path in sess.get("_overrides", []):
                    node = sess
                    parts = path.split(".")
                    for k in parts[:-1]:
                        node = node.get(k) if isinstance(node, dict) else None
                    if isinstance(node, dict):
                        node.pop(parts[-1], None)
                sess.pop("_overrides", None)
                sess.pop("_notes", None)
            return sessions
        fresh_cmp = without_overrides(json.loads(dump_golden(fresh)))
        for f_sess, e_sess in zip(fresh_cmp, expected):
            for path in e_sess.get("_overrides", []):
                node = f_sess
                parts = path.split(".")
                for k in parts[:-1]:
                    node = node.get(k) if isinstance(node, dict) else None
                if isinstance(node, dict):
                    node.pop(parts[-1], None)
        if fresh_cmp != without_overrides(expected):
            lines.append("%s: stale golden %s (tshark now derives different facts;"
                         " rerun write-golden and review the diff)"
                         % (name, os.path.relpath(gpath)))
    else:
        expected = json.loads(dump_golden(fresh))
    got, problems = mxwatch_sessions(mxwatch, cap)
    lines += ["%s: %s" % (name, p) for p in problems]
    pool = collections.defaultdict(list)
    for g in sorted(got, key=lambda r: (parse_time(r.get("ts_start")) or 0)):
        pool[(ep_key(g.get("client")), ep_key(g.get("server")))].append(g)
    for e in expected:
        key = (ep_key(e.get("client")), ep_key(e.get("server")))
        if not pool[key]:
            if not e.get("_optional"):
                lines.append("%s %s: session missing from mxwatch output (expected %s)"
                             % (name, label(e), "smtp+tls" if e.get("tls") else "smtp"))
            continue
        g = pool[key].pop(0)
        diffs = []
        compare(e, g, "", diffs)
        for field, x, y in diffs:
            lines.append("%s %s %s: expected %s, got %s" % (name, label(e), field, show(x), show(y)))
    for key, rest in pool.items():
        for g in rest:
            lines.append("%s %s: unexpected session in mxwatch output (no SMTP session"
                         " there in the expected facts)" % (name, label(g)))
    return lines


def cmd_check(mxwatch, caps):
    passed = failed = 0
    for cap in caps:
        try:
            problems = check_capture(mxwatch, cap)
        except (CaptureError, OSError) as e:
            problems = ["%s: %s" % (os.path.basename(cap), e)]
        if problems:
            failed += 1
            print("FAIL %s" % cap)
            for p in problems:
                print("  " + p)
        else:
            passed += 1
            print("ok   %s" % cap)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "facts":
        return cmd_facts(argv[2:])
    if len(argv) >= 3 and argv[1] == "write-golden":
        return cmd_write_golden(argv[2:])
    if len(argv) >= 4 and argv[1] == "check":
        return cmd_check(argv[2], argv[3:])
    print(__doc__.split("\nWhere every fact")[0].strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except CaptureError as e:
        warn(str(e))
        sys.exit(2)
    except BrokenPipeError:
        sys.exit(1)
