#!/usr/bin/env bash
# tests/policy/servers.sh - real DNS and HTTPS servers on loopback for testing
# mxwatch's policy refresher (`mxwatch policy fetch`): a DNSSEC-signed zone
# hierarchy under "test." served by nsd, and nginx serving MTA-STS policy files
# with certificates from a private test CA.  Nothing leaves loopback.
#
#   servers.sh start DIR                 make keys, zones, certs, configs in DIR; start nsd + nginx
#   servers.sh stop DIR                  stop them (idempotent, safe on a half-started DIR)
#   servers.sh status DIR                exit 0 if both servers run
#   servers.sh check DIR                 verify the servers: DNSSEC status with unbound-host
#                                        (libunbound, as mxwatch) and delv (BIND), TLS and HTTP with curl
#   servers.sh set-sts-id DIR DOMAIN ID  change DOMAIN's _mta-sts TXT id, re-sign, reload nsd
#
# Addresses (override with the environment at `start`):
#   MXW_DNS_ADDR=127.0.1.53 MXW_DNS_PORT=53   nsd, authoritative for test. and all children
#                                             (port 10053 if *:53 is taken and no port was set)
#   MXW_WEB_ADDR=127.0.1.10 (port 443)        nginx, one SNI server block per mta-sts.<domain>
# 127.0.0.0/8 is a "local" route on Linux, so both bind without an alias; if that
# route is missing an alias is added to lo (and removed again by `stop`).
#
# After `start`, DIR/env holds shell variables for tests (MXW_TRUST_ANCHOR, MXW_STUB,
# MXW_CA_BUNDLE, NGINX_LOG, expected TLSA data, ...).  Access log lines (NGINX_LOG) are
# "HOST METHOD URI STATUS BYTES MSEC", so fetches per mta-sts host can be counted.
#
# Zones (all children delegated from the signed "test." zone; trust anchor = DS of test.):
#   secure.test     signed, DS in parent: MX, A/AAAA, MTA-STS TXT + enforce policy, TLSA 3 1 1 /
#                   2 0 1 / 1 1 1 on mx1 and 3 1 2 on mx2                      -> secure
#   testing.test    signed: policy mode testing (CRLF), TXT split in two strings plus an
#                   unrelated TXT at _mta-sts that must be ignored             -> secure
#   insecure.test   unsigned, delegated without DS: MX, TXT, TLSA, policy      -> insecure
#   bogus.test      signed, DS in parent, but MX, _mta-sts TXT and TLSA RDATA changed after
#                   signing (the RRSIGs no longer match)                       -> bogus
#   bogustlsa.test  signed, everything valid except the TLSA RRset (RDATA changed after
#                   signing)                                                   -> TLSA bogus
#   badsyntax.test  policy line 2 "mode: enforcing"
#   redirect.test   /.well-known/mta-sts.txt answers 301 to another path (valid policy there)
#   oversized.test  policy file > 64 KiB (valid syntax otherwise)
#   wrongname.test  certificate for mta-sts.othername.test
#   expired.test    certificate from the test CA, expired in 2020
#   untrusted.test  certificate from a CA that is not in DIR/ca.pem
#   nopolicy.test   HTTPS works, policy answers 404
#   twotxt.test     two "v=STSv1" TXT records (=> no policy; the policy must not be fetched)
#   noid.test       TXT "v=STSv1;" without id (=> no policy; must not be fetched)
#   notxt.test      no _mta-sts TXT at all (policy present on the web server; must not be fetched)
# Every domain has "MX 10 mx1.<domain>" (secure.test also mx2) and an A record for mx1.
set -euo pipefail

DNS_ADDR=${MXW_DNS_ADDR:-127.0.1.53}
DNS_PORT=${MXW_DNS_PORT:-53}
WEB_ADDR=${MXW_WEB_ADDR:-127.0.1.10}

# Signed children (DS in the parent) and unsigned ones.
SIGNED_CHILDREN="secure testing bogus bogustlsa badsyntax redirect oversized wrongname expired
                 untrusted nopolicy twotxt noid notxt"
UNSIGNED_CHILDREN="insecure"
# Domains whose mta-sts.<domain> host nginx serves (notxt/twotxt/noid/bogus too: the
# policy is there, a correct client never asks for it).
WEB_DOMAINS="secure testing insecure bogus bogustlsa badsyntax redirect oversized wrongname
             expired untrusted nopolicy twotxt noid notxt"

STS_ID_SECURE=20261123T000000

log() { printf 'servers: %s\n' "$*" >&2; }
die() { printf 'servers: error: %s\n' "$*" >&2; exit 1; }

need_tools() {
	local missing=() t
	for t in nsd nsd-control ldns-keygen ldns-signzone ldns-key2ds nginx openssl dig delv \
		unbound-host curl ss; do
		command -v "$t" >/dev/null 2>&1 || missing+=("$t")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	die "missing tools: ${missing[*]} (apt-get install -y nsd ldnsutils nginx openssl bind9-dnsutils unbound-host curl iproute2)"
}

# Deterministic "hashes" for TLSA data (content is arbitrary, length is right).
hex256() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
hex512() { printf '%s' "$1" | sha512sum | cut -d' ' -f1; }
TLSA_SECURE_MX1_311=$(hex256 mxwatch-tlsa-secure-mx1-311)
TLSA_SECURE_MX1_201=$(hex256 mxwatch-tlsa-secure-mx1-201)
TLSA_SECURE_MX1_111=$(hex256 mxwatch-tlsa-secure-mx1-111)
TLSA_SECURE_MX2_312=$(hex512 mxwatch-tlsa-secure-mx2-312)
TLSA_INSECURE_MX1_311=$(hex256 mxwatch-tlsa-insecure-mx1-311)
TLSA_BOGUS_MX1_311=$(hex256 mxwatch-tlsa-bogus-mx1-311)          # as signed
TLSA_BOGUSTLSA_MX1_311=$(hex256 mxwatch-tlsa-bogustlsa-mx1-311)  # as signed
TLSA_TAMPERED=$(hex256 mxwatch-tlsa-attacker)                     # as served instead

# ------------------------------------------------------------------ helpers

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

# pid_alive PIDFILE PATTERN: the pid in PIDFILE runs and its command line has PATTERN
# (guards against a recycled pid).
pid_alive() {
	local pf=$1 pat=$2 pid
	pid=$(cat "$pf" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pat"
}

stop_pid() {
	local pf=$1 pat=$2 name=$3 pid i
	if pid_alive "$pf" "$pat"; then
		pid=$(cat "$pf" 2>/dev/null) || pid=""
		[ -n "$pid" ] || { rm -f "$pf"; return 0; }
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 50); do
			pid_alive "$pf" "$pat" || break
			sleep 0.1
		done
		if pid_alive "$pf" "$pat"; then
			log "$name ($pid) did not stop, sending KILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
		fi
		log "stopped $name ($pid)"
	fi
	rm -f "$pf"
}

# ensure_loopback ADDR: make sure ADDR can be bound (127/8 normally is).
ensure_loopback() {
	local a=$1 d=$2
	if ip -4 route show table local 2>/dev/null | grep -qE '^local 127\.0\.0\.0/8 '; then
		return 0
	fi
	ip -4 addr show dev lo | grep -qF " $a/" && return 0
	ip addr add "$a/32" dev lo
	echo "$a" >>"$d/added-addrs"
}

port_busy() { # ADDR PORT PROTO(t|u)
	ss -Hln"$3" "( sport = :$2 )" 2>/dev/null | awk '{print $4}' |
		grep -qE "^(\\*|0\\.0\\.0\\.0|\\[::\\]|$(printf '%s' "$1" | sed 's/\./\\./g')):$2\$"
}

# ------------------------------------------------------------------ zones

serial_next() { # DIR ZONE -> prints and stores a fresh serial
	local f="$1/zones/$2.serial" s=0
	[ -s "$f" ] && s=$(cat "$f")
	s=$((s + 1))
	echo "$s" >"$f"
	echo "$s"
}

zone_head() { # ZONE SERIAL
	cat <<EOF
\$ORIGIN $1.
\$TTL 3600
@	IN SOA	ns.test. hostmaster.$1. $2 3600 900 604800 300
@	IN NS	ns.test.
EOF
}

# Records of one child zone (after its SOA/NS).  sts_id: _mta-sts TXT id for domains
# that publish one.
child_records() {
	local d=$1 n=$2 sts_id=$3
	case $d in
	secure)
		cat <<EOF
@	IN MX	10 mx1
@	IN MX	20 mx2
mx1	IN A	127.0.2.1
mx1	IN AAAA	fd00::25
mx2	IN A	127.0.2.2
_mta-sts	IN TXT	"v=STSv1; id=$sts_id;"
mta-sts	IN A	$WEB_ADDR
_25._tcp.mx1	IN TLSA	3 1 1 $TLSA_SECURE_MX1_311
_25._tcp.mx1	IN TLSA	2 0 1 $TLSA_SECURE_MX1_201
_25._tcp.mx1	IN TLSA	1 1 1 $TLSA_SECURE_MX1_111
_25._tcp.mx2	IN TLSA	3 1 2 $TLSA_SECURE_MX2_312
_smtp._tls	IN TXT	"v=TLSRPTv1; rua=mailto:tlsrpt@secure.test, https://reports.secure.test/v1/tlsrpt"
EOF
		return ;;
	esac
	printf '@\tIN MX\t10 mx1\nmx1\tIN A\t127.0.5.%s\nmta-sts\tIN A\t%s\n' "$n" "$WEB_ADDR"
	case $d in
	testing)
		# Two character-strings (concatenated by the reader) and one non-STS TXT.
		printf '_mta-sts\tIN TXT\t"v=STSv1; " "id=%s;"\n' "$sts_id"
		printf '_mta-sts\tIN TXT\t"some-other-record=1"\n'
		# two TLSRPT records: none counts (RFC 8460 3)
		printf '_smtp._tls\tIN TXT\t"v=TLSRPTv1; rua=mailto:a@testing.test"\n'
		printf '_smtp._tls\tIN TXT\t"v=TLSRPTv1; rua=mailto:b@testing.test"\n' ;;
	insecure)
		printf '_mta-sts\tIN TXT\t"v=STSv1; id=%s;"\n' "$sts_id"
		printf '_25._tcp.mx1\tIN TLSA\t3 1 1 %s\n' "$TLSA_INSECURE_MX1_311"
		# split in two strings, next to a record of another kind
		printf '_smtp._tls\tIN TXT\t"v=TLSRPTv1;" " rua=https://r.insecure.test/x"\n'
		printf '_smtp._tls\tIN TXT\t"not-a-tlsrpt-record"\n' ;;
	bogus)
		printf 'mx-evil\tIN A\t127.0.66.1\n'
		printf '_mta-sts\tIN TXT\t"v=STSv1; id=%s;"\n' "$sts_id"
		printf '_25._tcp.mx1\tIN TLSA\t3 1 1 %s\n' "$TLSA_BOGUS_MX1_311" ;;
	bogustlsa)
		printf '_mta-sts\tIN TXT\t"v=STSv1; id=%s;"\n' "$sts_id"
		printf '_25._tcp.mx1\tIN TLSA\t3 1 1 %s\n' "$TLSA_BOGUSTLSA_MX1_311" ;;
	twotxt)
		printf '_mta-sts\tIN TXT\t"v=STSv1; id=20261123T000001;"\n'
		printf '_mta-sts\tIN TXT\t"v=STSv1; id=20261123T000002;"\n' ;;
	noid)
		printf '_mta-sts\tIN TXT\t"v=STSv1;"\n'
		# a destination of a scheme reports cannot go to
		printf '_smtp._tls\tIN TXT\t"v=TLSRPTv1; rua=ftp://r.noid.test/x"\n' ;;
	notxt) ;;
	*)
		printf '_mta-sts\tIN TXT\t"v=STSv1; id=%s;"\n' "$sts_id" ;;
	esac
}

default_sts_id() {
	case $1 in
	secure) echo "$STS_ID_SECURE" ;;
	*) echo "20261123T0000$(printf '%02d' "$2")" ;;
	esac
}

# write_child DIR NAME INDEX [STS_ID]: unsigned zone file DIR/zones/NAME.test.zone
write_child() {
	local dir=$1 d=$2 n=$3 id=${4:-}
	local z="$d.test"
	[ -n "$id" ] || id=$(default_sts_id "$d" "$n")
	echo "$id" >"$dir/zones/$z.stsid"
	{
		zone_head "$z" "$(serial_next "$dir" "$z")"
		child_records "$d" "$n" "$id"
	} >"$dir/zones/$z.zone"
}

keys_for() { # DIR ZONE -> ensures KSK+ZSK exist; prints "ZSKBASE KSKBASE"
	local kd="$1/keys/$2"
	if [ ! -s "$kd/ksk" ]; then
		mkdir -p "$kd"
		(cd "$kd" && ldns-keygen -r /dev/urandom -a ECDSAP256SHA256 -k "$2." >ksk &&
			ldns-keygen -r /dev/urandom -a ECDSAP256SHA256 "$2." >zsk)
	fi
	echo "$kd/$(cat "$kd/zsk") $kd/$(cat "$kd/ksk")"
}

# tamper FILE OWNER TYPE FROM TO: replace FROM by TO in the RDATA of the OWNER/TYPE
# records of a signed zone file (their RRSIG stays as it was, so it no longer verifies).
tamper() {
	awk -v o="$2" -v t="$3" -v from="$4" -v to="$5" 'BEGIN { OFS = "\t" }
		$1 == o && $4 == t { n = index($0, from); if (n) { $0 = substr($0, 1, n - 1) to substr($0, n + length(from)); hit++ } }
		{ print }
		END { if (!hit) { print "tamper: no " o " " t " containing " from > "/dev/stderr"; exit 1 } }' \
		"$1" >"$1.tmp"
	mv "$1.tmp" "$1"
}

sign_zone() { # DIR ZONE
	local dir=$1 z=$2 keys zsk ksk
	keys=$(keys_for "$dir" "$z")
	zsk=${keys% *}
	ksk=${keys#* }
	ldns-signzone -o "$z." -i "$(date -u -d '-1 day' +%Y%m%d%H%M%S)" \
		-e "$(date -u -d '+60 days' +%Y%m%d%H%M%S)" \
		-f "$dir/zones/$z.zone.signed.new" "$dir/zones/$z.zone" "$zsk" "$ksk"
	case $z in
	bogus.test)
		tamper "$dir/zones/$z.zone.signed.new" bogus.test. MX "mx1.bogus.test." "mx-evil.bogus.test."
		tamper "$dir/zones/$z.zone.signed.new" _mta-sts.bogus.test. TXT "id=" "id=666"
		tamper "$dir/zones/$z.zone.signed.new" _25._tcp.mx1.bogus.test. TLSA \
			"$TLSA_BOGUS_MX1_311" "$TLSA_TAMPERED" ;;
	bogustlsa.test)
		tamper "$dir/zones/$z.zone.signed.new" _25._tcp.mx1.bogustlsa.test. TLSA \
			"$TLSA_BOGUSTLSA_MX1_311" "$TLSA_TAMPERED" ;;
	esac
	mv "$dir/zones/$z.zone.signed.new" "$dir/zones/$z.zone.signed"
}

make_zones() {
	local dir=$1 d n=0 z
	mkdir -p "$dir/zones" "$dir/keys"
	for d in $SIGNED_CHILDREN $UNSIGNED_CHILDREN; do
		n=$((n + 1))
		write_child "$dir" "$d" "$n"
	done
	for d in $SIGNED_CHILDREN; do
		sign_zone "$dir" "$d.test"
	done
	cp "$dir/zones/insecure.test.zone" "$dir/zones/insecure.test.zone.signed"

	# Parent zone: delegations, DS for the signed children only.
	{
		zone_head test "$(serial_next "$dir" test)"
		printf 'ns\tIN A\t%s\n' "$DNS_ADDR"
		for d in $SIGNED_CHILDREN $UNSIGNED_CHILDREN; do
			printf '%s\tIN NS\tns.test.\n' "$d"
		done
		for d in $SIGNED_CHILDREN; do
			ldns-key2ds -n -2 "$dir/keys/$d.test/$(cat "$dir/keys/$d.test/ksk").key"
		done
	} >"$dir/zones/test.zone"
	sign_zone "$dir" test

	# Trust anchor: DS of test. (zone-file format, for ub_ctx_add_ta_file / unbound),
	# and the same as a BIND trust-anchors clause (for delv).
	ldns-key2ds -n -2 "$dir/keys/test/$(cat "$dir/keys/test/ksk").key" >"$dir/trust-anchor.key"
	awk '$4 == "DS" { printf "trust-anchors {\n\t\"%s\" static-ds %s %s %s \"%s\";\n};\n", $1, $5, $6, $7, $8 }' \
		"$dir/trust-anchor.key" >"$dir/trust-anchor.conf"
}

# ------------------------------------------------------------------ PKI + web

make_pki() {
	local dir=$1 d h
	local p="$dir/pki"
	mkdir -p "$p/newcerts"
	: >"$p/index.txt"
	echo 1000 >"$p/serial"
	cat >"$p/ca.cnf" <<EOF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = $p
database = $p/index.txt
new_certs_dir = $p/newcerts
certificate = $p/ca.pem
private_key = $p/ca.key
serial = $p/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[ any ]
commonName = supplied
[ req ]
distinguished_name = dn
[ dn ]
[ root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
	# The test CA (trusted via DIR/ca.pem) and a rogue CA (not trusted).
	for ca in ca rogue-ca; do
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$p/$ca.key" 2>/dev/null
		openssl req -new -x509 -key "$p/$ca.key" -out "$p/$ca.pem" -days 3650 \
			-subj "/O=mxwatch tests/CN=mxwatch $ca" -config "$p/ca.cnf" -extensions root \
			-set_serial 1 2>/dev/null
	done
	cp "$p/ca.pem" "$dir/ca.pem"

	leafext() { # SAN-NAME -> extension file for a server certificate
		cat >"$p/$1.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:$1
EOF
		echo "$p/$1.ext"
	}
	leaf() { # HOST SAN-NAME [openssl ca options...]
		local host=$1 san=$2
		shift 2
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$p/$host.key" 2>/dev/null
		openssl req -new -key "$p/$host.key" -subj "/CN=$san" -out "$p/$host.csr" 2>/dev/null
		openssl ca -batch -notext -config "$p/ca.cnf" -extfile "$(leafext "$san")" \
			-in "$p/$host.csr" -out "$p/$host.pem" "$@" 2>"$p/$host.ca.log" ||
			{ cat "$p/$host.ca.log" >&2; return 1; }
	}
	leaf default.invalid default.invalid -days 365
	for d in $WEB_DOMAINS; do
		h="mta-sts.$d.test"
		case $d in
		wrongname) leaf "$h" mta-sts.othername.test -days 365 ;;
		expired) leaf "$h" "$h" -startdate 20200101000000Z -enddate 20200401000000Z ;;
		untrusted)
			openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$p/$h.key" 2>/dev/null
			openssl req -new -key "$p/$h.key" -subj "/CN=$h" -out "$p/$h.csr" 2>/dev/null
			openssl x509 -req -in "$p/$h.csr" -CA "$p/rogue-ca.pem" \
				-CAkey "$p/rogue-ca.key" -set_serial 7 -days 365 -extfile "$(leafext "$h")" \
				-out "$p/$h.pem" 2>/dev/null ;;
		*) leaf "$h" "$h" -days 365 ;;
		esac
	done
}

policy_text() { # DOMAIN
	local d=$1
	case $d in
	secure) printf 'version: STSv1\nmode: enforce\nmx: mx1.secure.test\nmx: *.secure.test\nmax_age: 86400\n' ;;
	testing) printf 'version: STSv1\r\nmode: testing\r\nmx: mx1.testing.test\r\nmax_age: 604800\r\n' ;;
	badsyntax) printf 'version: STSv1\nmode: enforcing\nmx: mx1.badsyntax.test\nmax_age: 86400\n' ;;
	oversized)
		printf 'version: STSv1\nmode: enforce\nmx: mx1.oversized.test\nmax_age: 86400\n'
		local i
		for i in $(seq 1 700); do
			printf 'x-padding-%04d: %0100d\n' "$i" 0
		done ;;
	*) printf 'version: STSv1\nmode: enforce\nmx: mx1.%s.test\nmax_age: 86400\n' "$d" ;;
	esac
}

make_web() {
	local dir=$1 d h w
	for d in $WEB_DOMAINS; do
		h="mta-sts.$d.test"
		w="$dir/www/$h/.well-known"
		mkdir -p "$w"
		case $d in
		nopolicy) ;;
		redirect) policy_text "$d" >"$dir/www/$h/policy-after-redirect.txt" ;;
		*) policy_text "$d" >"$w/mta-sts.txt" ;;
		esac
	done
	mkdir -p "$dir/nginx-tmp"
	{
		cat <<EOF
# generated by tests/policy/servers.sh
user root;
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log info;
events { worker_connections 128; }
http {
    log_format mxw '\$host \$request_method \$request_uri \$status \$body_bytes_sent \$msec';
    access_log $dir/nginx-access.log mxw;
    client_body_temp_path $dir/nginx-tmp/body;
    proxy_temp_path $dir/nginx-tmp/proxy;
    fastcgi_temp_path $dir/nginx-tmp/fastcgi;
    uwsgi_temp_path $dir/nginx-tmp/uwsgi;
    scgi_temp_path $dir/nginx-tmp/scgi;
    types { text/plain txt; }
    default_type application/octet-stream;
    server_tokens off;
    keepalive_timeout 5;
    ssl_protocols TLSv1.2 TLSv1.3;

    # Unknown SNI: certificate for another name, 421.
    server {
        listen $WEB_ADDR:443 ssl default_server;
        server_name _;
        ssl_certificate $dir/pki/default.invalid.pem;
        ssl_certificate_key $dir/pki/default.invalid.key;
        return 421;
    }
EOF
		for d in $WEB_DOMAINS; do
			h="mta-sts.$d.test"
			cat <<EOF
    server {
        listen $WEB_ADDR:443 ssl;
        server_name $h;
        ssl_certificate $dir/pki/$h.pem;
        ssl_certificate_key $dir/pki/$h.key;
        root $dir/www/$h;
EOF
			if [ "$d" = redirect ]; then
				echo "        location = /.well-known/mta-sts.txt { return 301 https://$h/policy-after-redirect.txt; }"
				echo "        location = /policy-after-redirect.txt { }"
			else
				echo "        location = /.well-known/mta-sts.txt { }"
			fi
			echo "        location / { return 404; }"
			echo "    }"
		done
		echo "}"
	} >"$dir/nginx.conf"
}

# ------------------------------------------------------------------ nsd

make_nsd_conf() {
	local dir=$1 d
	mkdir -p "$dir/nsd"
	{
		cat <<EOF
# generated by tests/policy/servers.sh
server:
    ip-address: $DNS_ADDR@$DNS_PORT
    do-ip6: no
    reuseport: no
    server-count: 1
    username: ""
    chroot: ""
    database: ""
    zonefiles-write: 0
    zonesdir: "$dir/zones"
    zonelistfile: "$dir/nsd/zone.list"
    xfrdfile: "$dir/nsd/xfrd.state"
    xfrdir: "$dir/nsd"
    pidfile: "$dir/nsd.pid"
    logfile: "$dir/nsd.log"
    verbosity: 1
    hide-version: yes
remote-control:
    control-enable: yes
    control-interface: "$dir/nsd.ctl"
zone:
    name: "test."
    zonefile: "test.zone.signed"
EOF
		for d in $SIGNED_CHILDREN $UNSIGNED_CHILDREN; do
			printf 'zone:\n    name: "%s.test."\n    zonefile: "%s.test.zone.signed"\n' "$d" "$d"
		done
	} >"$dir/nsd.conf"
	nsd-checkconf "$dir/nsd.conf"
}

dns_q() { # NAME TYPE [dig options]
	local n=$1 t=$2
	shift 2
	dig +time=1 +tries=1 @"$DNS_ADDR" -p "$DNS_PORT" "$@" "$n" "$t"
}

wait_dns_serial() { # ZONE SERIAL
	local i got
	for i in $(seq 50); do
		got=$(dns_q "$1" SOA +short 2>/dev/null | awk '{print $3}') || true
		[ "$got" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ------------------------------------------------------------------ commands

write_env() {
	local dir=$1
	cat >"$dir/env" <<EOF
# generated by tests/policy/servers.sh start; source it.
MXW_SERVERS_DIR=$dir
MXW_DNS_ADDR=$DNS_ADDR
MXW_DNS_PORT=$DNS_PORT
MXW_WEB_ADDR=$WEB_ADDR
MXW_TRUST_ANCHOR=$dir/trust-anchor.key
MXW_TRUST_ANCHOR_BIND=$dir/trust-anchor.conf
MXW_STUB=test.@$DNS_ADDR@$DNS_PORT
MXW_CA_BUNDLE=$dir/ca.pem
MXW_UNBOUND_CONF=$dir/unbound.conf
NGINX_LOG=$dir/nginx-access.log
MXW_DOMAINS="$(for d in $SIGNED_CHILDREN $UNSIGNED_CHILDREN; do printf '%s.test ' "$d"; done)"
STS_ID_SECURE=$STS_ID_SECURE
TLSA_SECURE_MX1_311=$TLSA_SECURE_MX1_311
TLSA_SECURE_MX1_201=$TLSA_SECURE_MX1_201
TLSA_SECURE_MX1_111=$TLSA_SECURE_MX1_111
TLSA_SECURE_MX2_312=$TLSA_SECURE_MX2_312
TLSA_INSECURE_MX1_311=$TLSA_INSECURE_MX1_311
TLSA_BOGUS_MX1_311=$TLSA_BOGUS_MX1_311
TLSA_BOGUSTLSA_MX1_311=$TLSA_BOGUSTLSA_MX1_311
TLSA_TAMPERED=$TLSA_TAMPERED
EOF
	# unbound configuration equivalent to what mxwatch is given (for unbound-host).
	cat >"$dir/unbound.conf" <<EOF
server:
    verbosity: 0
    username: ""
    chroot: ""
    directory: "$dir"
    do-ip6: no
    do-not-query-localhost: no
    local-zone: "test." transparent
    trust-anchor-file: "$dir/trust-anchor.key"
    val-log-level: 2
stub-zone:
    name: "test."
    stub-addr: $DNS_ADDR@$DNS_PORT
EOF
}

cmd_status() {
	local dir=$1 rc=0
	if pid_alive "$dir/nsd.pid" "$dir/nsd.conf"; then echo "nsd: running ($(cat "$dir/nsd.pid"))"; else echo "nsd: stopped"; rc=1; fi
	if pid_alive "$dir/nginx.pid" "$dir/nginx.conf"; then echo "nginx: running ($(cat "$dir/nginx.pid"))"; else echo "nginx: stopped"; rc=1; fi
	return $rc
}

cmd_start() {
	local dir=$1 i
	need_tools
	if cmd_status "$dir" >/dev/null 2>&1; then
		log "already running in $dir"
		return 0
	fi
	cmd_stop "$dir" 2>/dev/null # half-started leftovers
	for f in env nsd.conf nginx.conf nginx-access.log nginx-error.log nsd.log; do rm -f "$dir/$f"; done
	rm -rf "$dir/zones" "$dir/keys" "$dir/pki" "$dir/www" "$dir/nsd" "$dir/nginx-tmp"

	# A system nsd/dnsmasq/bind may hold *:53: then use port 10053 unless a port was asked for.
	if [ -z "${MXW_DNS_PORT:-}" ] && { port_busy "$DNS_ADDR" "$DNS_PORT" u || port_busy "$DNS_ADDR" "$DNS_PORT" t; }; then
		log "port 53 on $DNS_ADDR is taken, using $DNS_ADDR@10053"
		DNS_PORT=10053
	fi
	port_busy "$DNS_ADDR" "$DNS_PORT" u && die "UDP $DNS_ADDR:$DNS_PORT is in use (set MXW_DNS_ADDR/MXW_DNS_PORT)"
	port_busy "$DNS_ADDR" "$DNS_PORT" t && die "TCP $DNS_ADDR:$DNS_PORT is in use (set MXW_DNS_ADDR/MXW_DNS_PORT)"
	port_busy "$WEB_ADDR" 443 t && die "TCP $WEB_ADDR:443 is in use (set MXW_WEB_ADDR)"
	ensure_loopback "$DNS_ADDR" "$dir"
	ensure_loopback "$WEB_ADDR" "$dir"

	make_zones "$dir"
	make_pki "$dir"
	make_web "$dir"
	make_nsd_conf "$dir"
	write_env "$dir"

	# nsd in the foreground (-d) as root (username ""), in its own session so it
	# survives the caller; we keep its pid.
	setsid nsd -d -c "$dir/nsd.conf" </dev/null >"$dir/nsd.out" 2>&1 &
	echo $! >"$dir/nsd.pid.start" # nsd writes nsd.pid itself (same pid)
	nginx -t -q -e "$dir/nginx-error.log" -c "$dir/nginx.conf" ||
		{ cmd_stop "$dir"; die "nginx configuration test failed (see $dir/nginx-error.log)"; }
	setsid nginx -e "$dir/nginx-error.log" -c "$dir/nginx.conf" </dev/null >"$dir/nginx.out" 2>&1 &
	echo $! >"$dir/nginx.pid.start"

	for i in $(seq 100); do
		[ -n "$(dns_q test. SOA +short 2>/dev/null)" ] && pid_alive "$dir/nsd.pid" "$dir/nsd.conf" && break
		pid_alive "$dir/nsd.pid.start" "$dir/nsd.conf" || break
		sleep 0.1
	done
	if [ -z "$(dns_q test. SOA +short 2>/dev/null)" ] || ! pid_alive "$dir/nsd.pid" "$dir/nsd.conf"; then
		cat "$dir/nsd.out" "$dir/nsd.log" >&2 2>/dev/null || true
		cmd_stop "$dir"
		die "nsd did not come up on $DNS_ADDR@$DNS_PORT"
	fi
	for i in $(seq 100); do
		[ -s "$dir/nginx.pid" ] && pid_alive "$dir/nginx.pid" "$dir/nginx.conf" &&
			ss -Hlnt "( sport = :443 )" | grep -qF "$WEB_ADDR:443" && break
		sleep 0.1
	done
	rm -f "$dir/nginx.pid.start" "$dir/nsd.pid.start"
	if ! pid_alive "$dir/nginx.pid" "$dir/nginx.conf"; then
		cat "$dir/nginx.out" "$dir/nginx-error.log" >&2 2>/dev/null || true
		cmd_stop "$dir"
		die "nginx did not come up on $WEB_ADDR:443"
	fi
	log "nsd on $DNS_ADDR@$DNS_PORT (pid $(cat "$dir/nsd.pid")), nginx on $WEB_ADDR:443 (pid $(cat "$dir/nginx.pid")); env in $dir/env"
}

cmd_stop() {
	local dir=$1 a
	[ -d "$dir" ] || return 0
	stop_pid "$dir/nginx.pid" "$dir/nginx.conf" nginx
	# nginx may have died before writing its pid file: the pid we started it with.
	[ -f "$dir/nginx.pid.start" ] && stop_pid "$dir/nginx.pid.start" "$dir/nginx.conf" nginx
	stop_pid "$dir/nsd.pid" "$dir/nsd.conf" nsd
	[ -f "$dir/nsd.pid.start" ] && stop_pid "$dir/nsd.pid.start" "$dir/nsd.conf" nsd
	if [ -f "$dir/added-addrs" ]; then
		while read -r a; do ip addr del "$a/32" dev lo 2>/dev/null || true; done <"$dir/added-addrs"
		rm -f "$dir/added-addrs"
	fi
	rm -f "$dir/nsd.ctl"
	return 0
}

cmd_set_sts_id() {
	local dir=$1 domain=$2 id=$3 d n=0 i serial
	d=${domain%.test}
	d=${d%.test.}
	for i in $SIGNED_CHILDREN $UNSIGNED_CHILDREN; do
		n=$((n + 1))
		[ "$i" = "$d" ] && break
	done
	[ "$i" = "$d" ] || die "unknown domain $domain"
	# shellcheck disable=SC1091
	. "$dir/env"
	DNS_ADDR=$MXW_DNS_ADDR DNS_PORT=$MXW_DNS_PORT WEB_ADDR=$MXW_WEB_ADDR
	write_child "$dir" "$d" "$n" "$id"
	if [ "$d" = insecure ]; then
		cp "$dir/zones/$d.test.zone" "$dir/zones/$d.test.zone.signed"
	else
		sign_zone "$dir" "$d.test"
	fi
	serial=$(cat "$dir/zones/$d.test.serial")
	nsd-control -c "$dir/nsd.conf" reload "$d.test" >/dev/null
	wait_dns_serial "$d.test" "$serial" || die "nsd did not load $d.test serial $serial"
	log "$d.test: _mta-sts id=$id (serial $serial)"
}

# ------------------------------------------------------------------ check

CHECK_PASS=0
CHECK_FAIL=0
ok() { CHECK_PASS=$((CHECK_PASS + 1)); printf 'ok   %s\n' "$*"; }
bad() { CHECK_FAIL=$((CHECK_FAIL + 1)); printf 'FAIL %s\n' "$*"; }

# ub_status NAME TYPE -> secure | insecure | bogus, prefixed "nxdomain:" or "nodata:"
# when the answer is empty; "error:OUTPUT" when unbound-host gives no status.
ub_status() {
	local out pre=""
	out=$(unbound-host -C "$UB_CONF" -v -t "$2" "$1" 2>&1) || true
	case $out in
	*"(NXDOMAIN)"*) pre=nxdomain: ;;
	*"has no "*) pre=nodata: ;;
	esac
	case $out in
	*BOGUS*) echo "${pre}bogus" ;;
	*"(secure)"*) echo "${pre}secure" ;;
	*"(insecure)"*) echo "${pre}insecure" ;;
	*) echo "error:$(printf '%s' "$out" | head -3 | tr '\n' ' ')" ;;
	esac
}

# delv_status NAME TYPE -> secure | insecure | bogus | other:...
delv_status() {
	local out
	out=$(delv -a "$DIR/trust-anchor.conf" +root=test. @"$DNS_ADDR" -p "$DNS_PORT" "$1" "$2" 2>&1) || true
	case $out in
	*"; fully validated"*) echo secure ;;
	*"; unsigned answer"*) echo insecure ;;
	*"resolution failed"* | *"validation failed"* | *"no valid signature"* | *"RRSIG failed"*) echo bogus ;;
	*) echo "other:$(printf '%s' "$out" | head -3 | tr '\n' ' ')" ;;
	esac
}

expect_ub() { # NAME TYPE WANT
	local got
	got=$(ub_status "$1" "$2")
	if [ "$got" = "$3" ]; then ok "unbound-host $2 $1: $3"; else bad "unbound-host $2 $1: want $3, got $got"; fi
}

expect_delv() {
	local got
	got=$(delv_status "$1" "$2")
	if [ "$got" = "$3" ]; then ok "delv $2 $1: $3"; else bad "delv $2 $1: want $3, got $got"; fi
}

# expect_rdata NAME TYPE EXPECTED...: exact set of RDATA lines (dig +short, sorted)
expect_rdata() {
	local n=$1 t=$2 got want
	shift 2
	# dig splits long hex into blocks: glue TLSA data back together.
	got=$(dns_q "$n" "$t" +short +norec | tr 'A-F' 'a-f' | sed 's/ *$//' |
		if [ "$t" = TLSA ]; then awk '{ d = ""; for (i = 4; i <= NF; i++) d = d $i; print $1, $2, $3, d }'; else cat; fi | sort)
	want=$(printf '%s\n' "$@" | tr 'A-F' 'a-f' | sort)
	if [ "$got" = "$want" ]; then ok "nsd $t $n"; else bad "nsd $t $n: want [$want] got [$got]"; fi
}

# curl_policy DOMAIN: fetch the policy like an MTA-STS client would (no redirects);
# prints "CODE SIZE CONTENT_TYPE CURL_EXIT"; address from nsd, never /etc/hosts.
curl_policy() {
	local h="mta-sts.$1" addr rc=0 out
	addr=$(dns_q "$h" A +short | head -1)
	out=$(curl -sS -o "$DIR/check-body" -w '%{http_code} %{size_download} -%{content_type}' \
		--max-time 5 --proto =https --cacert "$DIR/ca.pem" --resolve "$h:443:$addr" \
		"https://$h/.well-known/mta-sts.txt" 2>"$DIR/check-curl.err") || rc=$?
	echo "${out:-000 0 -} $rc"
}

expect_curl() { # DOMAIN CODE MIN_SIZE CURL_EXIT [BODY_FILE]
	local got code size ctype rc
	got=$(curl_policy "$1")
	read -r code size ctype rc <<<"$got"
	if [ "$code" = "$2" ] && [ "$rc" = "$4" ] && [ "$size" -ge "$3" ] &&
		{ [ "$code" != 200 ] || [ "$ctype" = -text/plain ]; } &&
		{ [ -z "${5:-}" ] || cmp -s "$DIR/check-body" "$5"; }; then
		ok "https mta-sts.$1: $got"
	else
		bad "https mta-sts.$1: want code $2 size>=$3 curl-exit $4, got $got $(head -c 200 "$DIR/check-curl.err")"
	fi
}

cmd_check() {
	DIR=$1
	[ -s "$DIR/env" ] || die "$DIR/env missing: run start first"
	# shellcheck disable=SC1091
	. "$DIR/env"
	DNS_ADDR=$MXW_DNS_ADDR DNS_PORT=$MXW_DNS_PORT WEB_ADDR=$MXW_WEB_ADDR
	UB_CONF=$MXW_UNBOUND_CONF
	if cmd_status "$DIR" >/dev/null; then ok "nsd and nginx running"; else bad "servers not running: $(cmd_status "$DIR" | tr '\n' ' ')"; fi

	# Raw data as served (authoritative, signed).
	local aa
	aa=$(dns_q secure.test MX +dnssec +norec)
	if grep -q 'flags:.* aa' <<<"$aa" && grep -qE 'RRSIG[[:space:]]+MX 13 ' <<<"$aa"; then
		ok "nsd answers authoritatively with RRSIG (alg 13) for secure.test MX"
	else bad "no aa/RRSIG for secure.test MX"; fi
	expect_rdata secure.test MX "10 mx1.secure.test." "20 mx2.secure.test."
	expect_rdata mx1.secure.test AAAA "fd00::25"
	expect_rdata _25._tcp.mx1.secure.test TLSA "3 1 1 $TLSA_SECURE_MX1_311" "2 0 1 $TLSA_SECURE_MX1_201" "1 1 1 $TLSA_SECURE_MX1_111"
	expect_rdata _mta-sts.secure.test TXT "\"v=STSv1; id=$(cat "$DIR/zones/secure.test.stsid");\""
	expect_rdata _mta-sts.twotxt.test TXT '"v=STSv1; id=20261123T000001;"' '"v=STSv1; id=20261123T000002;"'
	expect_rdata insecure.test DS
	expect_rdata _25._tcp.mx1.bogustlsa.test TLSA "3 1 1 $TLSA_TAMPERED"

	# Validation with libunbound (unbound-host), the library mxwatch uses.
	local d
	for t in "secure.test MX" "mx1.secure.test A" "mx1.secure.test AAAA" "mx2.secure.test A" \
		"_mta-sts.secure.test TXT" "_25._tcp.mx1.secure.test TLSA" "_25._tcp.mx2.secure.test TLSA" \
		"_mta-sts.testing.test TXT" "bogus.test SOA" "mx1.bogus.test A" "mta-sts.bogus.test A" \
		"bogustlsa.test MX" "mx1.bogustlsa.test A" "_mta-sts.bogustlsa.test TXT"; do
		# shellcheck disable=SC2086 # "NAME TYPE" pairs
		expect_ub $t secure
	done
	for d in $WEB_DOMAINS; do
		[ "$d" = insecure ] || expect_ub "mta-sts.$d.test" A secure
	done
	for t in "insecure.test MX" "mx1.insecure.test A" "_mta-sts.insecure.test TXT" \
		"_25._tcp.mx1.insecure.test TLSA" "mta-sts.insecure.test A"; do
		# shellcheck disable=SC2086 # "NAME TYPE" pairs
		expect_ub $t insecure
	done
	for t in "bogus.test MX" "_mta-sts.bogus.test TXT" "_25._tcp.mx1.bogus.test TLSA" \
		"_25._tcp.mx1.bogustlsa.test TLSA"; do
		# shellcheck disable=SC2086 # "NAME TYPE" pairs
		expect_ub $t bogus
	done
	expect_ub _mta-sts.notxt.test TXT nxdomain:secure
	expect_ub _25._tcp.mx1.testing.test TLSA nxdomain:secure
	expect_ub mx1.secure.test TXT nodata:secure

	# Independent validator (BIND's delv) agrees.
	expect_delv secure.test MX secure
	expect_delv _25._tcp.mx1.secure.test TLSA secure
	expect_delv insecure.test MX insecure
	expect_delv bogus.test MX bogus
	expect_delv _25._tcp.mx1.bogustlsa.test TLSA bogus

	# HTTPS: names and addresses from nsd, CA from DIR/ca.pem, no redirects followed.
	policy_text secure >"$DIR/check-expected"
	expect_curl secure.test 200 60 0 "$DIR/check-expected"
	policy_text testing >"$DIR/check-expected"
	expect_curl testing.test 200 60 0 "$DIR/check-expected"
	expect_curl insecure.test 200 60 0
	expect_curl badsyntax.test 200 60 0
	expect_curl redirect.test 301 0 0
	expect_curl oversized.test 200 65537 0
	expect_curl nopolicy.test 404 0 0
	expect_curl wrongname.test 000 0 60
	expect_curl expired.test 000 0 60
	expect_curl untrusted.test 000 0 60
	local err
	err=$(curl -sS -o /dev/null --cacert "$DIR/ca.pem" --resolve "mta-sts.expired.test:443:$WEB_ADDR" \
		https://mta-sts.expired.test/.well-known/mta-sts.txt 2>&1) || true
	case $err in *expired*) ok "expired.test certificate rejected as expired" ;; *) bad "expired.test: $err" ;; esac
	err=$(curl -sS -o /dev/null --cacert "$DIR/ca.pem" --resolve "mta-sts.wrongname.test:443:$WEB_ADDR" \
		https://mta-sts.wrongname.test/.well-known/mta-sts.txt 2>&1) || true
	case $err in *"subject name"* | *"does not match"*) ok "wrongname.test certificate rejected for its name" ;; *) bad "wrongname.test: $err" ;; esac
	if grep -qE '^mta-sts\.secure\.test GET /\.well-known/mta-sts\.txt 200 ' "$NGINX_LOG"; then
		ok "nginx access log records host and URI"
	else bad "nginx access log format"; fi
	rm -f "$DIR/check-body" "$DIR/check-curl.err" "$DIR/check-expected"

	echo "servers check: $CHECK_PASS passed, $CHECK_FAIL failed"
	[ "$CHECK_FAIL" -eq 0 ]
}

# ------------------------------------------------------------------ main

usage() { sed -n '2,15p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1
DIR=$(abs_dir "$2")
case $cmd in
start) cmd_start "$DIR" ;;
stop) cmd_stop "$DIR" ;;
status) cmd_status "$DIR" ;;
check) cmd_check "$DIR" ;;
set-sts-id) [ $# -eq 4 ] || usage; cmd_set_sts_id "$DIR" "$3" "$4" ;;
*) usage ;;
esac
