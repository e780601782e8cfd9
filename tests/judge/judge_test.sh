#!/usr/bin/env bash
# tests/judge/judge_test.sh - a real MTA as the judge of mxwatch's verdicts.
#
# In a network namespace of its own: nsd serves a DNSSEC-signed "test." zone
# (MX, A, _25._tcp TLSA, _mta-sts TXT), unbound validates it, nginx serves
# MTA-STS policies under a test CA, eight Postfix servers stand for the cases
# below, and one Postfix client enforces DANE (smtp_tls_security_level = dane,
# smtp_dns_support_level = dnssec, unbound as its resolver) and MTA-STS
# (postfix-mta-sts-resolver as smtp_tls_policy_maps). swaks hands the client
# one message per domain; tcpdump records every SMTP connection. Then mxwatch
# fetches the policies from the same servers (`policy fetch`), analyses the
# capture, and every session's verdict must agree with what the client did,
# read from the client's own log: "Verified TLS connection", "Untrusted TLS
# connection", "Anonymous TLS connection", "Server certificate not verified",
# "TLS is required, but was not offered". Disagreements that remain are
# argued below from the RFC text, never listed by hand.
#
#   judge_test.sh run               the whole scenario (root); compares
#   judge_test.sh check             the kept fixtures only (any user): the
#                                   capture, the policy export and the
#                                   expectations derived from the client log
#   judge_test.sh refresh           run, then write the fixtures
#
# unbound and postfix-mta-sts-resolver are unpacked from their Debian
# packages (downloaded by `make deps` into build/debs) and run from a
# temporary folder, so no resolver service is installed or left running.
# Nothing leaves the namespace; the system's Postfix is not touched.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
M=$ROOT/mxwatch
FIX=$ROOT/tests/judge
CAPTURE=$ROOT/pcaps/judge/postfix-dane-mtasts.pcap
NS=mxwjudge
DNS=127.0.2.53       # nsd
RES=127.0.2.54       # unbound
WEB=127.0.2.80       # nginx: mta-sts.<domain>
STSRES=127.0.2.1     # postfix-mta-sts-resolver
CLIENT=127.0.2.2     # the judging Postfix client
. tests/lib.sh

# The cases: domain, server address, server kind. Each domain's MX is
# mx.<domain> (mail.<domain> for sts-mxout) at the address.
#   dane-ok      DANE 3 1 1 matches, TLS 1.2 (the chain is on the wire)
#   dane13       DANE 3 1 1 matches, TLS 1.3 (the chain is encrypted: read
#                through the client's key log)
#   dane-bad     DANE 3 1 1 of another key
#   dane13-bad   DANE 3 1 1 of another key, TLS 1.3
#   dane-plain   DANE, server offers no STARTTLS
#   dane-strip   DANE, a proxy rewrites STARTTLS to XXXXXXXA
#   sts-ok       MTA-STS enforce, certificate valid for the MX, TLS 1.2
#   sts-ok13     MTA-STS enforce, certificate valid for the MX, TLS 1.3
#   sts-badname  MTA-STS enforce, certificate for another name
#   sts-mxout    MTA-STS enforce, MX host not in the policy's mx list
#   plain        no policy; server at Postfix defaults (may), TLS 1.2: ADH
CASES="dane-ok:127.0.2.11 dane13:127.0.2.12 dane-bad:127.0.2.13 dane-plain:127.0.2.17
       dane-strip:127.0.2.18 sts-ok:127.0.2.14 sts-badname:127.0.2.15 sts-mxout:127.0.2.16
       plain:127.0.2.19 dane13-bad:127.0.2.20 sts-ok13:127.0.2.21"
NCASES=11
# The judging client's TLS key log, written through build/mxwatch-keylog.so
# (its handshake secrets only): with it mxwatch reads the TLS 1.3 chains.
KEYS=$ROOT/pcaps/judge/postfix-dane-mtasts.keys
STRIP_TO=127.0.2.11 # the proxy forwards to the dane-ok server

# ---------------------------------------------------------------- compare
# expected.txt: "ADDRESS VERDICT[:REASON] CLIENT-LOG-EVIDENCE" per delivery;
# compares with mxwatch's session records of the capture.
compare() { # CAPTURE DB EXPECTED RULES-CONF [KEYLOG]
	local cap=$1 db=$2 exp=$3 conf=$4 keys=() out
	[ -n "${5:-}" ] && keys=(--tls-keylog "$5")
	out=$(mktemp)
	"$M" analyze --json --no-store --workers 1 --db "$db" --config "$conf" "${keys[@]}" "$cap" \
		>"$out" 2>"$out.err"
	check "analyze ran on $(basename "$cap")" test -s "$out"
	python3 - "$out" "$exp" "$CLIENT" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
sessions = {}
findings = {}
for r in recs:
    # The judging client's sessions only (the stripping proxy's own leg to
    # the dane-ok server is another session, with another client).
    if r["type"] == "session" and r["client"]["ip"] == sys.argv[3]:
        sessions.setdefault(r["server"]["ip"], []).append(r)
    elif r["type"] == "finding":
        findings.setdefault(r["session"], []).append(r)
ok = bad = 0
for line in open(sys.argv[2]):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    addr, want, evidence = line.split(None, 2)
    got = sessions.get(addr, [])
    verdicts = sorted(set(s["verdict"] + (":" + s["verdict_reason"] if s["verdict_reason"] else "")
                          for s in got))
    alerts = [f["id"] for s in got for f in findings.get(s["id"], []) if f["alert"]]
    good = got and verdicts == [want]
    # The client delivered: nothing may alert. It refused: something must.
    if want in ("verified", "no-policy") or want.startswith("not-checkable"):
        good = good and not alerts
    elif want == "failed":
        good = good and bool(alerts)
    print("%s %s: client said %s; mxwatch %s, alerts %s" % (
        "ok  " if good else "FAIL", addr, evidence, ",".join(verdicts) or "no session",
        ",".join(sorted(set(alerts))) or "none"))
    ok += good
    bad += not good
print("verdicts: %d agree, %d disagree" % (ok, bad))
sys.exit(1 if bad or not ok else 0)
PY
	local rc=$?
	check "every verdict agrees with the Postfix client ($(basename "$exp"))" test $rc = 0
	rm -f "$out" "$out.err"
}

cmd_check() {
	local t
	t=$(mktemp -d /tmp/mxwatch-judge-check.XXXXXX)
	check "fixtures present" test -s "$CAPTURE" -a -s "$FIX/expected.txt" -a -s "$FIX/policy.txt"
	"$M" policy import --db "$t/j.db" "$FIX/policy.txt" >/dev/null
	check "fixture policy imported" test $? = 0
	# The MTA-STS checks need the capture's test CA.
	printf '[rules]\nca_bundle = %s\n' "$FIX/ca.pem" >"$t/rules.conf"
	compare "$CAPTURE" "$t/j.db" "$FIX/expected.txt" "$t/rules.conf" "$KEYS"
	rm -rf "$t"
}

# ---------------------------------------------------------------- scenario
T=""
cleanup() {
	local pids d
	for d in "$T"/pf-*; do
		[ -d "$d" ] && ip netns exec "$NS" postfix -c "$d/etc" stop >/dev/null 2>&1
	done
	pids=$(ip netns pids "$NS" 2>/dev/null)
	[ -n "$pids" ] && kill $pids 2>/dev/null && sleep 0.5
	pids=$(ip netns pids "$NS" 2>/dev/null)
	[ -n "$pids" ] && kill -9 $pids 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "/etc/netns/$NS"
	[ -n "$T" ] && [ "${KEEP:-0}" != 1 ] && rm -rf "$T"
}

nsx() { ip netns exec "$NS" "$@"; }

unpack() { # PACKAGE -> $T/pkg/...
	local deb
	deb=$(ls "$ROOT"/build/debs/"$1"_*.deb 2>/dev/null | head -1)
	[ -n "$deb" ] || { echo "missing build/debs/$1_*.deb (make deps downloads it)" >&2; return 1; }
	dpkg -x "$deb" "$T/pkg"
}

spki() { # PEM -> SHA-256 of the DER SubjectPublicKeyInfo, hex (TLSA 3 1 1)
	openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}

cert() { # NAME SAN... : key + certificate from the test CA
	local n=$1 san="" h
	shift
	for h in "$@"; do san="$san${san:+,}DNS:$h"; done
	openssl req -newkey rsa:2048 -nodes -keyout "$T/pki/$n.key" -subj "/CN=$1" \
		-addext "subjectAltName=$san" -out "$T/pki/$n.csr" 2>/dev/null &&
		openssl x509 -req -in "$T/pki/$n.csr" -CA "$T/pki/ca.pem" -CAkey "$T/pki/ca.key" \
			-CAcreateserial -days 3650 -copy_extensions copyall -out "$T/pki/$n.pem" 2>/dev/null
}

make_pki() {
	mkdir -p "$T/pki"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/pki/ca.key" -out "$T/pki/ca.pem" \
		-days 3650 -subj "/O=mxwatch judge/CN=mxwatch judge CA" 2>/dev/null || return 1
	cert dane mx.dane-ok.test mx.dane13.test mx.dane-bad.test mx.dane-plain.test \
		mx.dane-strip.test mx.dane13-bad.test || return 1
	cert other other.dane-bad.test || return 1 # its key is in dane-bad's TLSA
	cert sts-ok mx.sts-ok.test || return 1
	cert sts-ok13 mx.sts-ok13.test || return 1
	cert sts-badname wrong.sts-badname.test || return 1
	cert sts-mxout mail.sts-mxout.test || return 1
	cert plain mx.plain.test || return 1
	cert web mta-sts.sts-ok.test mta-sts.sts-badname.test mta-sts.sts-mxout.test \
		mta-sts.sts-ok13.test || return 1
	chmod 644 "$T"/pki/*
}

make_dns() {
	local z=$T/zones k
	mkdir -p "$z/keys"
	local ok other
	ok=$(spki "$T/pki/dane.pem")
	other=$(spki "$T/pki/other.pem")
	{
		printf '$ORIGIN test.\n$TTL 300\n'
		printf '@ SOA ns.test. admin.test. 1 3600 600 86400 300\n@ NS ns.test.\nns A %s\n' "$DNS"
		local c d a mx
		for c in $CASES; do
			d=${c%%:*}
			a=${c#*:}
			mx=mx.$d
			[ "$d" = sts-mxout ] && mx=mail.$d
			printf '%s MX 10 %s\n%s A %s\n' "$d" "$mx" "$mx" "$a"
			case $d in
			dane-bad | dane13-bad) printf '_25._tcp.%s TLSA 3 1 1 %s\n' "$mx" "$other" ;;
			dane*) printf '_25._tcp.%s TLSA 3 1 1 %s\n' "$mx" "$ok" ;;
			sts-*) printf '_mta-sts.%s TXT "v=STSv1; id=judge1"\nmta-sts.%s A %s\n' "$d" "$d" "$WEB" ;;
			esac
		done
	} >"$z/test.zone"
	(cd "$z/keys" && ldns-keygen -r /dev/urandom -a ECDSAP256SHA256 -k test. >ksk &&
		ldns-keygen -r /dev/urandom -a ECDSAP256SHA256 test. >zsk) || return 1
	ldns-signzone -o test. -i "$(date -u -d '-1 day' +%Y%m%d%H%M%S)" \
		-e "$(date -u -d '+30 days' +%Y%m%d%H%M%S)" -f "$z/test.zone.signed" "$z/test.zone" \
		"$z/keys/$(cat "$z/keys/zsk")" "$z/keys/$(cat "$z/keys/ksk")" || return 1
	ldns-key2ds -n -2 "$z/keys/$(cat "$z/keys/ksk").key" >"$T/anchor.ds"
	cat >"$T/nsd.conf" <<EOF
server:
    ip-address: $DNS
    do-ip6: no
    username: ""
    chroot: ""
    database: ""
    zonesdir: "$z"
    zonelistfile: "$T/nsd.zonelist"
    xfrdfile: "$T/nsd.xfrd"
    xfrdir: "$T"
    pidfile: "$T/nsd.pid"
    logfile: "$T/nsd.log"
remote-control:
    control-enable: no
zone:
    name: "test."
    zonefile: "test.zone.signed"
EOF
	unbound_conf "$T/unbound.conf" "$T" "$RES"
	cat >>"$T/unbound.conf" <<EOF
    trust-anchor-file: "$T/anchor.ds"
    module-config: "validator iterator"
    val-log-level: 2
stub-zone:
    name: "test."
    stub-addr: $DNS
EOF
	mkdir -p "/etc/netns/$NS"
	printf 'nameserver %s\noptions edns0 trust-ad\n' "$RES" >"/etc/netns/$NS/resolv.conf"
	printf '127.0.0.1 localhost\n' >"/etc/netns/$NS/hosts"
}

make_web() {
	local d
	mkdir -p "$T/www" "$T/nginx-tmp"
	{
		cat <<EOF
user root; worker_processes 1; daemon off; pid $T/nginx.pid;
error_log $T/nginx-error.log info;
events { worker_connections 64; }
http {
    access_log $T/nginx-access.log;
    client_body_temp_path $T/nginx-tmp/body; proxy_temp_path $T/nginx-tmp/proxy;
    fastcgi_temp_path $T/nginx-tmp/fastcgi; uwsgi_temp_path $T/nginx-tmp/uwsgi;
    scgi_temp_path $T/nginx-tmp/scgi;
    types { text/plain txt; }
    default_type text/plain;
    ssl_certificate $T/pki/web.pem;
    ssl_certificate_key $T/pki/web.key;
EOF
		for d in sts-ok sts-badname sts-mxout sts-ok13; do
			mkdir -p "$T/www/$d/.well-known"
			printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.%s.test\r\nmax_age: 86400\r\n' "$d" \
				>"$T/www/$d/.well-known/mta-sts.txt"
			printf '    server { listen %s:443 ssl; server_name mta-sts.%s.test; root %s/www/%s; }\n' \
				"$WEB" "$d" "$T" "$d"
		done
		echo "}"
	} >"$T/nginx.conf"
}

. pcaps/tools/postfix.sh
pf_server() { # NAME ADDRESS HOSTNAME, main.cf lines on stdin
	pf_instance "$T/pf-$1" "$1" "$3" example.net "$2" ipv4 127.0.0.0/8
}

make_postfix() {
	local p=$T/pki
	# NAME ADDRESS HOSTNAME KEY TLS13 RELAY-DOMAINS (KEY "-": no STARTTLS)
	local line n a h k t13 rd
	while read -r n a h k t13 rd; do
		{
			if [ "$k" = - ]; then
				echo "smtpd_tls_security_level = none"
			else
				echo "smtpd_tls_security_level = may"
				echo "smtpd_tls_chain_files = $p/$k.key, $p/$k.pem, $p/ca.pem"
				[ "$t13" = no ] && echo "smtpd_tls_protocols = !SSLv2, !SSLv3, !TLSv1.3"
			fi
			echo "relay_domains = $rd"
		} | pf_server "$n" "$a" "$h" || return 1
	done <<EOF
dane-ok 127.0.2.11 mx.dane-ok.test dane no dane-ok.test,dane-strip.test
dane13 127.0.2.12 mx.dane13.test dane yes dane13.test
dane-bad 127.0.2.13 mx.dane-bad.test dane no dane-bad.test
dane-plain 127.0.2.17 mx.dane-plain.test - - dane-plain.test
sts-ok 127.0.2.14 mx.sts-ok.test sts-ok no sts-ok.test
sts-badname 127.0.2.15 mx.sts-badname.test sts-badname no sts-badname.test
sts-mxout 127.0.2.16 mail.sts-mxout.test sts-mxout no sts-mxout.test
dane13-bad 127.0.2.20 mx.dane13-bad.test dane yes dane13-bad.test
sts-ok13 127.0.2.21 mx.sts-ok13.test sts-ok13 yes sts-ok13.test
EOF
	# Postfix's defaults: "may" with a certificate; capped at TLS 1.2 the
	# two ends settle on an anonymous (ADH) suite.
	pf_server plain 127.0.2.19 mx.plain.test <<EOF || return 1
smtpd_tls_security_level = may
smtpd_tls_chain_files = $p/plain.key, $p/plain.pem, $p/ca.pem
smtpd_tls_protocols = !SSLv2, !SSLv3, !TLSv1.3
relay_domains = plain.test
EOF
	# The judge: DANE from validated DNS, MTA-STS from the resolver daemon.
	# Its smtp processes run as the instance's mail owner and append the
	# key log through the preload library.
	install -m 0600 -o postfix /dev/null "$T/client.keys" || return 1
	pf_instance "$T/pf-client" client relay.sender.test sender.test "$CLIENT" ipv4 127.0.0.0/8 <<EOF
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE POSTLOG_HOSTNAME
    LD_PRELOAD=$ROOT/build/mxwatch-keylog.so MXWATCH_KEYLOG=$T/client.keys
relay_domains =
default_transport = smtp
relay_transport = smtp
disable_dns_lookups = no
smtp_host_lookup = dns
smtp_dns_support_level = dnssec
smtp_tls_security_level = dane
smtp_tls_policy_maps = socketmap:inet:$STSRES:8461:postfix
smtp_tls_CAfile = $p/ca.pem
smtp_tls_loglevel = 1
smtp_bind_address = $CLIENT
smtp_connection_cache_on_demand = no
maximal_queue_lifetime = 0
bounce_queue_lifetime = 0
smtpd_relay_restrictions = permit_mynetworks, reject
EOF
}

start_all() {
	local a
	ip netns add "$NS" || return 1
	nsx ip link set lo up
	for a in $DNS $RES $WEB $STSRES $CLIENT 127.0.2.11 127.0.2.12 127.0.2.13 127.0.2.14 \
		127.0.2.15 127.0.2.16 127.0.2.17 127.0.2.18 127.0.2.19 127.0.2.20 127.0.2.21; do
		nsx ip addr add "$a/32" dev lo || return 1
	done
	nsx nsd -d -c "$T/nsd.conf" >"$T/nsd.out" 2>&1 &
	nsx "$T/pkg/usr/sbin/unbound" -d -c "$T/unbound.conf" >"$T/unbound.out" 2>&1 &
	nsx nginx -c "$T/nginx.conf" -e "$T/nginx-error.log" >"$T/nginx.out" 2>&1 &
	cat >"$T/mta-sts.yml" <<EOF
host: $STSRES
port: 8461
cache:
  type: internal
  options:
    cache_size: 100
default_zone:
  strict_testing: false
  timeout: 4
EOF
	# The resolver's HTTPS client trusts the test CA only.
	SSL_CERT_FILE=$T/pki/ca.pem PYTHONPATH=$T/pkg/usr/lib/python3/dist-packages \
		nsx /usr/bin/python3 "$T/pkg/usr/bin/mta-sts-daemon" -c "$T/mta-sts.yml" -v info \
		>"$T/mta-sts.log" 2>&1 &
	for _ in $(seq 100); do
		nsx dig +short +time=1 +tries=1 @"$RES" dane-ok.test MX 2>/dev/null | grep -q mx &&
			nsx ss -Hltn | grep -q "$WEB:443" && nsx ss -Hltn | grep -q "$STSRES:8461" && break
		sleep 0.1
	done
	nsx ss -Hltn | grep -q "$STSRES:8461" || { cat "$T/mta-sts.log" >&2; return 1; }
	local d
	for d in "$T"/pf-*; do
		nsx postfix -c "$d/etc" start >"$d/start.log" 2>&1 || { cat "$d/start.log" >&2; return 1; }
	done
	for a in $CLIENT 127.0.2.11 127.0.2.12 127.0.2.13 127.0.2.14 127.0.2.15 127.0.2.16 \
		127.0.2.17 127.0.2.19; do
		pf_listening "$NS" "$a" || { echo "no Postfix on $a" >&2; return 1; }
	done
	nsx python3 pcaps/tools/strip-proxy.py 127.0.2.18 25 "$STRIP_TO" 25 \
		>"$T/strip.log" 2>&1 &
	pf_listening "$NS" 127.0.2.18
}

# Reads the client's log into expected.txt: one line per destination.
derive_expectations() { # OUT KEYLOG
	python3 - "$T/pf-client/maillog" "$1" "$2" <<'PY'
import re, sys
log = open(sys.argv[1]).read().splitlines()
# With the client's key log, a TLS 1.3 chain can be checked as the client
# checked it; without, it cannot (RFC 8446 4.4.2).
have_keys = "SERVER_HANDSHAKE_TRAFFIC_SECRET" in open(sys.argv[3]).read()
out = open(sys.argv[2], "w")
out.write("# derived from the judging Postfix client's log (tests/judge/judge_test.sh)\n")
out.write("# ADDRESS  EXPECTED-VERDICT  WHAT THE CLIENT LOGGED\n")
per = {}
for l in log:
    m = re.search(r"(Verified|Trusted|Untrusted|Anonymous) TLS connection established to "
                  r"\S+\[([\d.]+)\]:25: (TLSv[\d.]+)", l)
    if m:
        per.setdefault(m.group(2), {})["tls"] = (m.group(1), m.group(3))
    m = re.search(r"relay=\S+\[([\d.]+)\]:25.* status=(\w+) \((.*)\)$", l)
    if m:
        per.setdefault(m.group(1), {})["status"] = (m.group(2), m.group(3))
    m = re.search(r"TLS is required, but was not offered by host \S+\[([\d.]+)\]", l)
    if m:
        per.setdefault(m.group(1), {})["notls"] = True
    m = re.search(r"server certificate verification failed for \S+\[([\d.]+)\]:25: "
                  r"num=\d+:(.*)$", l)
    if m:
        per.setdefault(m.group(1), {})["why"] = m.group(2)
for addr in sorted(per):
    p = per[addr]
    kind, version = p.get("tls", (None, None))
    status, text = p.get("status", ("none", ""))
    evidence = "%s TLS %s; status=%s (%s)%s" % (kind or "no", version or "-", status, text[:80],
                                               "; " + p["why"] if "why" in p else "")
    if p.get("notls") or kind == "Untrusted" or (kind and status != "sent"):
        want = "failed"
    elif kind == "Verified" and version == "TLSv1.3" and not have_keys:
        # RFC 8446 4.4.2: the Certificate message is encrypted in TLS 1.3;
        # a passive monitor without the keys cannot repeat the client's check.
        want = "not-checkable:tls13-no-keys"
    elif kind == "Verified":
        want = "verified"
    elif kind == "Anonymous" and status == "sent":
        # RFC 7435 opportunistic TLS to a domain with no policy.
        want = "no-policy"
    else:
        want = "unknown"
    out.write("%s %s %s\n" % (addr, want, evidence))
PY
}

cmd_run() {
	[ "$(id -u)" = 0 ] || { echo "judge: needs root (namespaces, Postfix)"; return 77; }
	local t
	for t in postfix nsd nginx swaks tcpdump ldns-signzone dig; do
		command -v "$t" >/dev/null 2>&1 || { echo "judge: $t is not installed"; return 77; }
	done
	T=$(mktemp -d /tmp/mxwatch-judge.XXXXXX)
	chmod 755 "$T"
	trap cleanup EXIT
	mkdir -p "$T/pkg"
	check "unbound and postfix-mta-sts-resolver unpacked" \
		eval 'unpack unbound && unpack postfix-mta-sts-resolver'
	check "test CA and certificates" make_pki
	check "signed zone, nsd and unbound configured" make_dns
	make_web
	check "Postfix servers and the judging client configured" make_postfix
	if ! start_all; then
		check "servers started in namespace $NS" false
		return 1
	fi
	check "servers started in namespace $NS" true
	check "unbound validates the zone (AD bit)" \
		eval "nsx dig +dnssec @$RES dane-ok.test MX | grep -q 'flags:.* ad'"
	nsx tcpdump -i lo -s 0 -U -w "$T/judge.pcap" tcp port 25 >"$T/tcpdump.log" 2>&1 &
	local cap_pid=$! c d
	for _ in $(seq 50); do grep -q "listening on" "$T/tcpdump.log" && break; sleep 0.1; done
	for c in $CASES; do
		d=${c%%:*}
		nsx swaks --server "$CLIENT" --from a@sender.test --to "user@$d.test" \
			--header "Subject: judge $d" >"$T/swaks-$d.log" 2>&1
	done
	# Every message delivered or refused (queue lifetime 0: no retry).
	local n=0
	for _ in $(seq 150); do
		n=$(grep -c 'relay=[a-z].*\]:25, .* status=' "$T/pf-client/maillog" 2>/dev/null)
		[ "${n:-0}" -ge $NCASES ] && break
		sleep 0.2
	done
	check "the client logged a result for all $NCASES deliveries ($n)" test "${n:-0}" -ge $NCASES
	sleep 1
	# tcpdump runs under ip netns exec: signal it, not the wrapper.
	pkill -INT -f "tcpdump -i lo -s 0 -U -w $T/judge.pcap"
	for _ in $(seq 50); do kill -0 $cap_pid 2>/dev/null || break; sleep 0.1; done
	derive_expectations "$T/expected.txt" "$T/client.keys"
	check "an expectation for every case (no unknown)" \
		eval "[ \$(grep -vc '^#' '$T/expected.txt') -ge $NCASES ] && ! grep -q ' unknown ' '$T/expected.txt'"
	sed 's/^/    /' "$T/expected.txt"
	# mxwatch learns the policies from the same servers.
	local domains=""
	for c in $CASES; do domains="$domains ${c%%:*}.test"; done
	nsx "$M" policy fetch --db "$T/j.db" --stub "test.@$DNS" --trust-anchor "$T/anchor.ds" \
		--ca-bundle "$T/pki/ca.pem" $domains >"$T/fetch.log" 2>&1
	check "policy fetch of the $NCASES domains" test $? = 0
	printf '[rules]\nca_bundle = %s\n' "$T/pki/ca.pem" >"$T/rules.conf"
	check "the client wrote its TLS 1.3 handshake secrets ($(grep -c SERVER_HANDSHAKE "$T/client.keys") sessions, no traffic secrets)" \
		eval "grep -q SERVER_HANDSHAKE_TRAFFIC_SECRET '$T/client.keys' && ! grep -q 'TRAFFIC_SECRET_0\|CLIENT_RANDOM' '$T/client.keys'"
	compare "$T/judge.pcap" "$T/j.db" "$T/expected.txt" "$T/rules.conf" "$T/client.keys"
	if [ "${REFRESH:-0}" = 1 ]; then
		mkdir -p "$(dirname "$CAPTURE")"
		cp "$T/judge.pcap" "$CAPTURE"
		cp "$T/expected.txt" "$FIX/expected.txt"
		cp "$T/client.keys" "$KEYS"
		cp "$T/pki/ca.pem" "$FIX/ca.pem"
		"$M" policy export --db "$T/j.db" >"$FIX/policy.txt"
		echo "fixtures written: $CAPTURE tests/judge/{expected.txt,policy.txt,ca.pem}"
	fi
}

case ${1:-run} in
run) cmd_run ;;
refresh) REFRESH=1 cmd_run ;;
check) cmd_check ;;
*) sed -n '2,27p' "$0"; exit 2 ;;
esac
rc=$?
[ $rc = 77 ] && exit 77
finish
