#!/usr/bin/env bash
# `mxwatch capture` watching real SMTP sessions: the test makes two network
# namespaces joined by a veth pair, runs two private Postfix instances in the
# server namespace (one offering STARTTLS with a throwaway certificate, one
# without), runs swaks sessions against them from the client namespace, and
# captures on the server's veth end as an unprivileged user. The expectations
# come from what swaks itself saw (its transcripts: STARTTLS in the EHLO reply,
# STARTTLS sent, the TLS protocol negotiated, its local port) and from the
# policy the test imports: one session record per swaks session with the
# right addresses, STARTTLS and TLS facts, the certificate on the wire, the MX
# host from the policy's address map, and exactly the findings an MTA-STS
# enforce + DANE domain calls for. Needs root, Postfix and swaks; nothing
# leaves the two namespaces (no route out, no DNS, mail is discarded).
# Ends with "N passed, N failed"; skips (exit 77) where namespaces cannot be
# made.
set -u
cd "$(dirname "$0")/.." || exit 1
M=$(pwd)/mxwatch
. tests/lib.sh
skip() { echo "skip: live MTA test: $*"; exit 77; }

[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, Postfix)"
for t in ip postfix swaks openssl python3 sqlite3 ss; do
	command -v "$t" >/dev/null 2>&1 || skip "$t is not installed (make deps installs it)"
done
perl -MNet::SSLeay -e 1 2>/dev/null || skip "swaks cannot do TLS: libnet-ssleay-perl is not installed"
[ -x "$M" ] || { echo "FAIL mxwatch is not built (make mxwatch)"; echo "0 passed, 1 failed"; exit 1; }

id=$$
NSC=mxwmc$id        # client namespace: swaks
NSS=mxwms$id        # server namespace: Postfix, mxwatch on the veth end
VC=mxwmc$id
VS=mxwms$id
CLIENT=198.51.100.10     # TEST-NET-2, only inside our namespaces
TLSMX=198.51.100.25      # Postfix with STARTTLS       mx.example.test
PLAINMX=198.51.100.26    # Postfix without STARTTLS    smtp.example.test
DOMAIN=example.test
T=$(mktemp -d /tmp/mxwatch-livemta.XXXXXX)
chmod 755 "$T"
PID=
PF_DIRS=()
cleanup() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
	local d pids
	for d in "${PF_DIRS[@]+"${PF_DIRS[@]}"}"; do
		ip netns exec "$NSS" postfix -c "$d/etc" stop >/dev/null 2>&1
	done
	# give the masters a moment to end their children; whatever is still left
	# in our own namespaces after that was started by this script
	for _ in $(seq 30); do
		[ -z "$(ip netns pids "$NSS" 2>/dev/null)" ] && break
		sleep 0.1
	done
	for ns in "$NSC" "$NSS"; do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		# shellcheck disable=SC2086 # a list of pids
		[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
	done
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSS" 2>/dev/null
	if [ -n "${KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ network
ip netns add "$NSC" 2>"$T/netns.err" && ip netns add "$NSS" 2>>"$T/netns.err" ||
	skip "cannot create network namespaces: $(head -1 "$T/netns.err")"
ip link add "$VC" netns "$NSC" type veth peer name "$VS" netns "$NSS" 2>"$T/veth.err" ||
	skip "cannot create a veth pair: $(head -1 "$T/veth.err")"
for ns in "$NSC" "$NSS"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1
done
ip -n "$NSC" addr add "$CLIENT/24" dev "$VC" &&
	ip -n "$NSS" addr add "$TLSMX/24" dev "$VS" &&
	ip -n "$NSS" addr add "$PLAINMX/24" dev "$VS" &&
	ip -n "$NSC" link set lo up && ip -n "$NSS" link set lo up &&
	ip -n "$NSC" link set "$VC" up && ip -n "$NSS" link set "$VS" up
check "namespaces, veth pair and addresses set up" test $? = 0
# frames as a NIC would put them on a mirror port: no offloads (<= MTU,
# real checksums); optional, the sensor copes with either
if command -v ethtool >/dev/null 2>&1; then
	ip netns exec "$NSC" ethtool -K "$VC" tx off tso off gso off gro off >/dev/null 2>&1
	ip netns exec "$NSS" ethtool -K "$VS" tx off tso off gso off gro off >/dev/null 2>&1
fi
only_veth_routes() { # no default route, nothing but the veth subnet
	! { ip -n "$NSC" route show; ip -n "$NSS" route show; } | grep -qv '^198\.51\.100\.0/24 '
}
check "no route out of the namespaces (only the veth subnet)" only_veth_routes

# ------------------------------------------------------------------ certificates
# pcaps/certs keeps only public certificates (the CA's key is not kept), so
# the STARTTLS server gets a throwaway CA and leaf for mx.example.test.
mkdir -p "$T/tls"
(
	cd "$T/tls" &&
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-keyout ca.key -out ca.pem -subj "/O=mxwatch live test/CN=mxwatch live test CA" &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout mx.key -out mx.csr -subj "/O=mxwatch live test/CN=mx.$DOMAIN" &&
		printf 'subjectAltName=DNS:mx.%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
			"$DOMAIN" >mx.ext &&
		openssl x509 -req -in mx.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile mx.ext -out mx.pem
) >"$T/tls/openssl.log" 2>&1
check "test CA and mx.$DOMAIN certificate made" test -s "$T/tls/mx.pem"
chmod 644 "$T"/tls/*.pem
chmod 600 "$T"/tls/*.key
leaf_sha256=$(openssl x509 -in "$T/tls/mx.pem" -outform DER | sha256sum | cut -d' ' -f1)
leaf_spki=$(openssl x509 -in "$T/tls/mx.pem" -noout -pubkey | openssl pkey -pubin -outform DER |
	sha256sum | cut -d' ' -f1)

# ------------------------------------------------------------------ policy
# example.test: MTA-STS enforce naming both MX hosts, DANE-EE (3 1 1) for the
# STARTTLS one; the addresses are the two Postfix instances.
cat >"$T/live.policy" <<EOF
mx $DOMAIN 10 mx.$DOMAIN
mx $DOMAIN 20 smtp.$DOMAIN
address mx.$DOMAIN $TLSMX
address smtp.$DOMAIN $PLAINMX
mta-sts $DOMAIN mode=enforce max_age=86400 mx=mx.$DOMAIN mx=smtp.$DOMAIN id=live1
tlsa mx.$DOMAIN 25 3 1 1 $leaf_spki
EOF
# etc/demo.conf, with the test CA for the MTA-STS (PKIX) checks
sed "s|^ca_bundle *=.*|ca_bundle = $T/tls/ca.pem|" etc/demo.conf >"$T/live.conf"
mkdir -p "$T/db"
"$M" policy import --db "$T/db/live.db" "$T/live.policy" >"$T/import.log" 2>&1
check "policy imported" test $? = 0
check "config uses the test CA" grep -q "^ca_bundle = $T/tls/ca.pem" "$T/live.conf"

# ------------------------------------------------------------------ Postfix
# Private Postfix instances: pcaps/tools/postfix.sh (shared with the
# capture script).
. pcaps/tools/postfix.sh
pf_new() { # NAME HOSTNAME ADDRESS, extra main.cf lines on stdin
	pf_instance "$T/pf-$1" "$1" "$2" "$DOMAIN" "$3" ipv4 198.51.100.0/24
	PF_DIRS+=("$T/pf-$1")
}

pf_start() { # NAME ADDRESS
	ip netns exec "$NSS" postfix -c "$T/pf-$1/etc" start >"$T/pf-$1/start.log" 2>&1 &&
		pf_listening "$NSS" "$2"
}

pf_new tls "mx.$DOMAIN" "$TLSMX" <<EOF
smtpd_tls_security_level = may
smtpd_tls_chain_files = $T/tls/mx.key, $T/tls/mx.pem, $T/tls/ca.pem
smtpd_tls_loglevel = 1
EOF
pf_new plain "smtp.$DOMAIN" "$PLAINMX" <<EOF
smtpd_tls_security_level = none
EOF
pf_start tls "$TLSMX"
check "Postfix with STARTTLS listens on $TLSMX:25" test $? = 0
pf_start plain "$PLAINMX"
check "Postfix without STARTTLS listens on $PLAINMX:25" test $? = 0

# ------------------------------------------------------------------ sensor
ip netns exec "$NSS" "$M" capture -i "$VS" --json --db "$T/db/live.db" --config "$T/live.conf" \
	--user nobody --stats-interval 0 >"$T/live.json" 2>"$T/live.err" &
PID=$!
for _ in $(seq 100); do grep -q "running on" "$T/live.err" 2>/dev/null && break; sleep 0.1; done
check "sensor started on $VS" grep -q "running on 1 interface" "$T/live.err"

# ------------------------------------------------------------------ sessions
# NAME LOCAL_PORT SERVER [swaks options]; a fixed local port per session ties
# the session record to the swaks run that made it.
: >"$T/sessions.tsv"
n_sessions=0
swaks_rc_bad=0
session() {
	local name=$1 lport=$2 server=$3 rc
	shift 3
	ip netns exec "$NSC" swaks --server "$server:25" -li "$CLIENT" -lp "$lport" \
		--ehlo client.sender.test --from "alice@sender.test" --to "bob@$DOMAIN" \
		--timeout 15 --header "Subject: mxwatch live test $name" "$@" >"$T/swaks-$name.log" 2>&1
	rc=$?
	n_sessions=$((n_sessions + 1))
	[ "$rc" = 0 ] || swaks_rc_bad=$((swaks_rc_bad + 1))
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$CLIENT" "$lport" "$server" "$rc" "$T/swaks-$name.log" \
		>>"$T/sessions.tsv"
}
tlsargs=(--tls-sni "mx.$DOMAIN" --tls-verify --tls-ca-path "$T/tls/ca.pem")
session tls12 40001 "$TLSMX" --tls --tls-protocol tlsv1_2 "${tlsargs[@]}"
session tls13 40002 "$TLSMX" --tls --tls-protocol tlsv1_3 "${tlsargs[@]}"
session tls-optional 40003 "$TLSMX" --tls-optional "${tlsargs[@]}"
session plain-to-tls-mx 40004 "$TLSMX"
session plain 40005 "$PLAINMX"
session plain-tls-optional 40006 "$PLAINMX" --tls-optional
check "$n_sessions swaks sessions completed (failed: $swaks_rc_bad)" test "$swaks_rc_bad" = 0
# queue manager and discard agent run after swaks has its 250: poll the logs
for _ in $(seq 100); do
	delivered=$(cat "$T"/pf-*/maillog 2>/dev/null | grep -c 'status=sent (delivered to the bit bucket)')
	[ "$delivered" -ge "$n_sessions" ] && break
	sleep 0.1
done
check "Postfix accepted and discarded $n_sessions messages (${delivered:-0})" \
	test "${delivered:-0}" = "$n_sessions"

# every session has ended (FIN or RST): a closed flow lingers 5 s for late
# ACKs (sensor/stream/caps.h), then its record comes out on the sensor's wall-clock
# tick, with no further traffic. Wait for them, then stop the sensor.
for _ in $(seq 150); do
	before_term=$(grep -c '"type":"session"' "$T/live.json")
	[ "$before_term" -ge "$n_sessions" ] && break
	sleep 0.1
done
check "closed sessions reported while running, before SIGTERM ($before_term)" \
	test "$before_term" = "$n_sessions"
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
check "SIGTERM ends the sensor cleanly (exit $rc)" test "$rc" = 0
check "capture statistics: packets received, none dropped" grep -qE "^capture $VS: received [1-9][0-9]*, dropped 0," "$T/live.err"

# ------------------------------------------------------------------ verdict
python3 - "$T/live.json" "$T/sessions.tsv" "$T/live.policy" "$DOMAIN" "$leaf_sha256" \
	>"$T/checks.out" 2>&1 <<'EOF'
import json, re, sys

out_json, tsv, policy_file, domain, leaf_sha256 = sys.argv[1:6]

def check(name, cond):
    print(("ok   " if cond else "FAIL ") + name)

recs = [json.loads(l) for l in open(out_json) if l.strip()]
sessions = [r for r in recs if r.get("type") == "session"]
findings = [r for r in recs if r.get("type") == "finding"]
runs = [l.rstrip("\n").split("\t") for l in open(tsv) if l.strip()]

# the policy's address map (server IP -> MX host) and the hosts with TLSA
mx_of, tlsa_hosts = {}, set()
for l in open(policy_file):
    f = l.split()
    if len(f) >= 3 and f[0] == "address":
        mx_of[f[2]] = f[1]
    if len(f) >= 2 and f[0] == "tlsa":
        tlsa_hosts.add(f[1])

check("one session record per swaks session (%d records, %d sessions)" % (len(sessions), len(runs)),
      len(sessions) == len(runs))

def transcript(path):
    """What swaks saw and did, from its transcript."""
    t = {"offered": False, "requested": False, "tls": None, "plain_mail": False, "quit": False}
    for line in open(path, errors="replace"):
        line = line.rstrip("\r\n")
        # server lines before TLS are "<-  ", inside TLS "<~  "
        if re.match(r"^<-  250[ -]STARTTLS\s*$", line, re.I):
            t["offered"] = True
        if re.match(r"^ -> STARTTLS\s*$", line, re.I):
            t["requested"] = True
        m = re.match(r"^=== TLS started with cipher (TLSv1(?:\.\d)?):", line)
        if m:
            t["tls"] = m.group(1)
        if re.match(r"^ -> MAIL FROM:", line, re.I):
            t["plain_mail"] = True
        if re.match(r"^ -> QUIT\s*$", line, re.I):   # QUIT inside TLS is not visible
            t["quit"] = True
    return t

seen_ids = set()
for name, cip, cport, sip, rc, log in runs:
    t = transcript(log)
    mine = [s for s in sessions if s["client"]["port"] == int(cport)]
    check("%s: exactly one session record (client port %s)" % (name, cport), len(mine) == 1)
    if len(mine) != 1:
        continue
    s = mine[0]
    seen_ids.add(s["id"])
    st = s["smtp"]["starttls"]
    check("%s: client %s, server %s:25" % (name, cip, sip),
          s["client"]["ip"] == cip and s["server"]["ip"] == sip and s["server"]["port"] == 25)
    check("%s: EHLO name; QUIT seen = %s (sent in the clear)" % (name, t["quit"]),
          s["smtp"]["helo_name"] == "client.sender.test" and s["smtp"]["ehlo"] is True
          and s["smtp"]["quit"] == t["quit"])
    check("%s: STARTTLS offered = %s (as swaks saw it)" % (name, t["offered"]), st["offered"] is t["offered"])
    check("%s: STARTTLS requested = %s" % (name, t["requested"]), st["requested"] is t["requested"])
    tls = s["tls"]
    if t["tls"]:
        check("%s: TLS version %s (as swaks negotiated)" % (name, t["tls"]),
              t["tls"] in ("TLSv1.2", "TLSv1.3") and tls is not None and tls.get("version") == t["tls"]
              and st["tls_started"] is True and tls.get("handshake_complete") is True)
        check("%s: SNI mx.%s" % (name, domain), tls is not None and tls.get("sni") == "mx." + domain)
        if t["tls"] == "TLSv1.2":
            certs = (tls or {}).get("certs") or []
            check("%s: leaf certificate on the wire is the server's" % name,
                  len(certs) >= 1 and certs[0].get("sha256") == leaf_sha256)
            check("%s: verified (DANE-EE 3 1 1 from the policy)" % name, s["policy"]["verified"] is True)
        else:
            check("%s: TLS 1.3 not called verified (certificate unobservable)" % name,
                  s["policy"]["verified"] is not True and (tls or {}).get("certs_observable") is False)
    else:
        check("%s: no TLS" % name, tls is None and st["tls_started"] is False)
        check("%s: plaintext transaction, recipient domain %s" % (name, domain),
              s["smtp"]["plaintext_transaction"] is t["plain_mail"] is True
              and domain in s["smtp"]["rcpt_domains"])
    check("%s: tied to %s via MX host %s" % (name, domain, mx_of.get(sip)),
          s["policy"]["domain"] == domain and s["policy"]["mx_host"] == mx_of.get(sip))
    # what an MTA-STS enforce domain calls for, from swaks' view of the session
    if t["tls"]:
        want = set()
    elif t["offered"]:
        want = {"starttls-unused", "plaintext-to-policy-domain"}
    else:
        want = {"starttls-lost", "plaintext-to-policy-domain"}
    got = [f for f in findings if f.get("session") == s["id"]]
    check("%s: findings %s" % (name, " ".join(sorted(want)) or "none"),
          sorted(f["id"] for f in got) == sorted(want))
    check("%s: findings name %s, client and server" % (name, domain),
          all(f["domain"] == domain and f["client_ip"] == cip and f["server_ip"] == sip for f in got))
    check("%s: policy.findings counts them (%d)" % (name, len(got)), s["policy"]["findings"] == len(got))
    if "plaintext-to-policy-domain" in want:
        # RFC 8460: plaintext is starttls-not-supported, with TLSA records or
        # without (dane-required means no validated TLSA records at all)
        rt = "starttls-not-supported"
        check("%s: plaintext-to-policy-domain is an alert, RFC 8460 %s" % (name, rt),
              any(f["id"] == "plaintext-to-policy-domain" and f["alert"] is True
                  and f["rfc8460"] == rt for f in got))

check("no records or findings from anything else",
      all(s["id"] in seen_ids for s in sessions) and all(f.get("session") in seen_ids for f in findings))
EOF
cat "$T/checks.out"
pass=$((pass + $(grep -c '^ok ' "$T/checks.out")))
fail=$((fail + $(grep -c '^FAIL ' "$T/checks.out")))
grep -q '^Traceback' "$T/checks.out" && fail=$((fail + 1)) && echo "FAIL checker crashed"

stored=$(sqlite3 "$T/db/live.db" "SELECT count(*) FROM sessions" 2>/dev/null)
check "sessions stored after dropping privileges (${stored:-0})" \
	test "${stored:-0}" -gt 0 -a "${stored:-0}" = "$n_sessions"
if [ "$fail" != 0 ]; then
	echo "--- sensor stderr"; cat "$T/live.err"
	for f in "$T"/swaks-*.log; do echo "--- $f"; cat "$f"; done
fi
finish
