#!/usr/bin/env bash
# tests/policy/test_fetch.sh - integration test of `mxwatch policy fetch` (SQLite policy
# cache + DNSSEC-validating refresher) against real servers on loopback started by
# tests/policy/servers.sh (nsd with a signed test. hierarchy, nginx with a test CA).
#
#   bash tests/policy/test_fetch.sh ./mxwatch        (as root: binds 127.0.1.53:53, 127.0.1.10:443)
#   KEEP_WORK=1 ...   keep the work directory (database, server logs, zones) for debugging
#
# Runs  mxwatch policy fetch --db DB --trust-anchor TA --stub test.@ADDR@PORT --ca-bundle CA DOMAIN...
# and checks the stored rows with the sqlite3 CLI.  Conventions the checks rely on: names
# are stored lowercase without a trailing dot; TLSA data is lowercase hex; addresses are
# in inet_ntop form.  Domains without a usable _mta-sts TXT (twotxt: two v=STSv1 records,
# noid: no id, notxt: no record) have no policy: the test accepts no mta_sts row, or a
# row with txt_id NULL, or result 'sts-policy-invalid' -- but mode must be NULL and the
# policy must never be requested from the web server.  Policy downloads are counted in
# nginx's access log.  Each check prints "ok" or "FAIL"; the last line is
# "N passed, N failed"; exit status 1 on any failure.  The servers are stopped on exit
# whatever happens (trap).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVERS="$HERE/servers.sh"
[ $# -eq 1 ] || { echo "usage: $0 path/to/mxwatch" >&2; exit 2; }
MXW=$(realpath "$1")

WORK=$(mktemp -d /tmp/mxw-policy-test.XXXXXX)
SRV=$WORK/servers
DB=$WORK/policy.db
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	[ -n "${FETCH_PID:-}" ] && kill -TERM "$FETCH_PID" 2>/dev/null
	"$SERVERS" stop "$SRV" >/dev/null 2>&1 || true
	if "$SERVERS" status "$SRV" >/dev/null 2>&1; then echo "WARNING: test servers still running in $SRV" >&2; fi
	if [ -n "${KEEP_WORK:-}" ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$1"; }
bad() { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$1"; }
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ] && exit 0
	exit 1
}

sq() { sqlite3 -batch -noheader -nullvalue '<null>' -separator ' ' "$DB" "$1" 2>&1; }

# expect DESC SQL WANT: the query's whole output equals WANT.
expect() {
	local got
	got=$(sq "$2")
	if [ "$got" = "$3" ]; then ok "$1"; else bad "$1: got [$got] want [$3]"; fi
}
# expect_true DESC SQL: the query prints 1.
expect_true() {
	local got
	got=$(sq "$2")
	if [ "$got" = 1 ]; then ok "$1"; else bad "$1: [$2] gave [$got]"; fi
}
expect_eq() { # DESC GOT WANT
	if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got [$2] want [$3]"; fi
}

# Requests for mta-sts.<domain> in nginx's access log ("HOST METHOD URI STATUS ...").
fetches() { awk -v h="mta-sts.$1" '$1 == h' "$NGINX_LOG" | wc -l; }

FETCH_N=0
# fetch [OPTIONS] DOMAIN...: run mxwatch, leave its exit status in FETCH_RC.
fetch() {
	FETCH_N=$((FETCH_N + 1))
	local out="$WORK/fetch$FETCH_N.out"
	# In the background + wait, so that a signal to this script runs the traps at once.
	timeout 300 "$MXW" policy fetch --db "$DB" --trust-anchor "$MXW_TRUST_ANCHOR" \
		--stub "$MXW_STUB" --ca-bundle "$MXW_CA_BUNDLE" "$@" >"$out" 2>&1 &
	FETCH_PID=$!
	wait "$FETCH_PID"
	FETCH_RC=$?
	FETCH_PID=
	FETCH_OUT=$out
	echo "   (fetch #$FETCH_N $*: exit $FETCH_RC, output in $(basename "$out"))"
	if [ "$FETCH_RC" -ge 2 ]; then sed 's/^/   | /' "$out" | head -40; fi
}

# ------------------------------------------------------------------ servers

[ "$(id -u)" = 0 ] || { bad "must run as root (DNS on port 53, HTTPS on 443)"; finish; }
command -v sqlite3 >/dev/null || { bad "sqlite3 CLI missing (apt-get install sqlite3)"; finish; }
[ -x "$MXW" ] || { bad "no executable $MXW"; finish; }

echo "== test servers"
t_start=$(date +%s%N)
if ! "$SERVERS" start "$SRV" >"$WORK/servers-start.log" 2>&1; then
	sed 's/^/   | /' "$WORK/servers-start.log"
	bad "servers.sh start"
	finish
fi
if "$SERVERS" check "$SRV" >"$WORK/servers-check.log" 2>&1; then
	ok "servers.sh start + check ($(tail -1 "$WORK/servers-check.log" | sed 's/servers check: //'), $((($(date +%s%N) - t_start) / 1000000)) ms)"
else
	grep -v '^ok' "$WORK/servers-check.log" | sed 's/^/   | /'
	bad "servers.sh check: the test environment is broken, not testing mxwatch"
	finish
fi
# shellcheck disable=SC1091
. "$SRV/env"
WWW=$SRV/www

# ------------------------------------------------------------------ first fetch

echo "== first fetch of every test domain"
# Fetch counts before (servers.sh check has already fetched each policy once).
declare -A BEFORE
for d in $MXW_DOMAINS; do BEFORE[$d]=$(fetches "$d"); done
T0=$(date +%s)
# shellcheck disable=SC2086
fetch $MXW_DOMAINS
T1=$(date +%s)
# bogus.test and bogustlsa.test answer with forged data: not an all-clear,
# so the run exits 3 and names them (the other domains are stored).
if [ "$FETCH_RC" = 3 ]; then ok "policy fetch exit status 3 (forged answers are failures)"; else bad "policy fetch exit status $FETCH_RC, want 3"; fi
for d in bogus.test bogustlsa.test; do
	if grep -q "policy fetch: $d: .*DNSSEC bogus" "$FETCH_OUT"; then
		ok "the failure names $d"
	else
		bad "the failure names $d"
	fi
done
if [ ! -s "$DB" ]; then
	bad "policy fetch created no database $DB"
	sed 's/^/   | /' "$WORK/fetch$FETCH_N.out" | head -40
	finish
fi
schema_err=$(sq "SELECT domain, host, preference, dnssec, ttl, fetched_at, source FROM mx LIMIT 0;
	SELECT host, address, dnssec, ttl, fetched_at, source FROM mx_address LIMIT 0;
	SELECT domain, txt_id, txt_raw, txt_dnssec, policy_text, mode, max_age, mx_patterns,
	       policy_fetched_at, checked_at, result, error_detail, source FROM mta_sts LIMIT 0;
	SELECT name, host, port, usage, selector, mtype, data, dnssec, ttl, fetched_at, source FROM tlsa LIMIT 0;
	SELECT id, ts, domain, what, result, detail FROM fetch_log LIMIT 0;")
if [ -n "$schema_err" ]; then
	bad "database schema (tables/columns of the policy cache): $schema_err"
	finish
fi
ok "database has the policy cache schema"
delta() { echo $(($(fetches "$1") - ${BEFORE[$1]})); }

echo "== secure.test (signed, DS in parent)"
expect "secure.test: MX rows (host, preference, dnssec)" \
	"SELECT host, preference, dnssec FROM mx WHERE domain = 'secure.test' ORDER BY preference" \
	"mx1.secure.test 10 secure
mx2.secure.test 20 secure"
expect_true "secure.test: MX source dns, ttl in 1..3600, fetched_at during the run" \
	"SELECT count(*) = 2 FROM mx WHERE domain = 'secure.test' AND source = 'dns'
	 AND ttl BETWEEN 1 AND 3600 AND fetched_at BETWEEN $T0 AND $T1"
expect "secure.test: mx_address rows for mx1/mx2 (A and AAAA), secure" \
	"SELECT host, address, dnssec FROM mx_address WHERE host IN ('mx1.secure.test', 'mx2.secure.test')
	 ORDER BY host, address" \
	"mx1.secure.test 127.0.2.1 secure
mx1.secure.test fd00::25 secure
mx2.secure.test 127.0.2.2 secure"
expect_true "secure.test: mx_address source dns, ttl in 1..3600, fetched_at during the run" \
	"SELECT count(*) = 3 FROM mx_address WHERE host LIKE 'mx_.secure.test' AND source = 'dns'
	 AND ttl BETWEEN 1 AND 3600 AND fetched_at BETWEEN $T0 AND $T1"
expect "secure.test: mta_sts txt_id, txt_dnssec, mode, max_age, result" \
	"SELECT txt_id, txt_dnssec, mode, max_age, result FROM mta_sts WHERE domain = 'secure.test'" \
	"$STS_ID_SECURE secure enforce 86400 ok"
expect_eq "secure.test: mx_patterns hold both patterns, one per line" \
	"$(sq "SELECT replace(mx_patterns, char(13), '<CR>') FROM mta_sts WHERE domain = 'secure.test'" |
		sed '/^$/d' | LC_ALL=C sort)" \
	"$(printf '%s\n' '*.secure.test' mx1.secure.test)"
expect_true "secure.test: policy_text is the served file, byte for byte" \
	"SELECT hex(CAST(policy_text AS BLOB)) = hex(readfile('$WWW/mta-sts.secure.test/.well-known/mta-sts.txt'))
	 FROM mta_sts WHERE domain = 'secure.test'"
expect_true "secure.test: txt_raw is the TXT record" \
	"SELECT txt_raw = 'v=STSv1; id=$STS_ID_SECURE;' FROM mta_sts WHERE domain = 'secure.test'"
expect_true "secure.test: policy_fetched_at and checked_at during the run" \
	"SELECT policy_fetched_at BETWEEN $T0 AND $T1 AND checked_at BETWEEN $T0 AND $T1
	 FROM mta_sts WHERE domain = 'secure.test'"
expect "secure.test: TLSA for _25._tcp.mx1.secure.test, all three records (1 1 1 too), secure" \
	"SELECT host, port, usage, selector, mtype, data, dnssec FROM tlsa
	 WHERE name = '_25._tcp.mx1.secure.test' ORDER BY usage, selector, mtype" \
	"mx1.secure.test 25 1 1 1 $TLSA_SECURE_MX1_111 secure
mx1.secure.test 25 2 0 1 $TLSA_SECURE_MX1_201 secure
mx1.secure.test 25 3 1 1 $TLSA_SECURE_MX1_311 secure"
expect "secure.test: TLSA for _25._tcp.mx2.secure.test (3 1 2, SHA-512), secure" \
	"SELECT host, port, usage, selector, mtype, data, dnssec FROM tlsa WHERE name = '_25._tcp.mx2.secure.test'" \
	"mx2.secure.test 25 3 1 2 $TLSA_SECURE_MX2_312 secure"
expect_true "secure.test: TLSA source dns, ttl in 1..3600, fetched_at during the run" \
	"SELECT count(*) = 4 FROM tlsa WHERE host LIKE 'mx_.secure.test' AND source = 'dns'
	 AND ttl BETWEEN 1 AND 3600 AND fetched_at BETWEEN $T0 AND $T1"
expect_true "secure.test: fetch_log rows of this run all ok, covering mx and policy" \
	"SELECT count(DISTINCT CASE WHEN what IN ('mx', 'policy') THEN what END) = 2
	        AND count(CASE WHEN result IS NOT 'ok' THEN 1 END) = 0
	 FROM fetch_log WHERE (domain = 'secure.test' OR domain LIKE '%.secure.test') AND ts BETWEEN $T0 AND $T1"
expect_eq "secure.test: policy downloaded once" "$(delta secure.test)" 1

echo "== TLSRPT records (_smtp._tls TXT, RFC 8460 3)"
expect "secure.test: TLSRPT ok, secure, both destinations in order" \
	"SELECT result, dnssec, replace(rua, char(10), ' ') FROM tlsrpt WHERE domain = 'secure.test'" \
	"ok secure mailto:tlsrpt@secure.test https://reports.secure.test/v1/tlsrpt"
expect "testing.test: two TLSRPT records count as none" \
	"SELECT result, coalesce(rua, '-') FROM tlsrpt WHERE domain = 'testing.test'" "multiple -"
expect "insecure.test: a record in two strings, beside another TXT: ok, insecure" \
	"SELECT result, dnssec, rua FROM tlsrpt WHERE domain = 'insecure.test'" \
	"ok insecure https://r.insecure.test/x"
expect "noid.test: only a destination of another scheme: invalid, no destination" \
	"SELECT result, coalesce(rua, '-') FROM tlsrpt WHERE domain = 'noid.test'" "invalid -"
expect "notxt.test: no record: none" "SELECT result FROM tlsrpt WHERE domain = 'notxt.test'" "none"
"$MXW" policy show --db "$DB" secure.test >"$WORK/show-tlsrpt.out" 2>&1
expect_eq "policy show lists the destinations" \
	"$(grep -c '^    rua \(mailto:tlsrpt@secure.test\|https://reports.secure.test/v1/tlsrpt\)$' "$WORK/show-tlsrpt.out")" 2
"$MXW" policy export --db "$DB" >"$WORK/export-tlsrpt.txt" 2>&1
expect_eq "policy export carries them" \
	"$(grep '^tlsrpt secure.test ' "$WORK/export-tlsrpt.txt")" \
	"tlsrpt secure.test rua=mailto:tlsrpt@secure.test,https://reports.secure.test/v1/tlsrpt dnssec=secure"
rm -f "$WORK/import-tlsrpt.db"
"$MXW" policy import --db "$WORK/import-tlsrpt.db" "$WORK/export-tlsrpt.txt" >/dev/null 2>&1
expect_eq "policy import reads them back (secure.test, insecure.test)" \
	"$(sqlite3 -separator ' ' "$WORK/import-tlsrpt.db" "SELECT domain, dnssec, replace(rua, char(10), ',') FROM tlsrpt ORDER BY 1")" \
	"$(printf 'insecure.test insecure https://r.insecure.test/x\nsecure.test secure mailto:tlsrpt@secure.test,https://reports.secure.test/v1/tlsrpt')"

echo "== testing.test (mode testing, CRLF policy, TXT in two strings + an unrelated TXT)"
expect "testing.test: mta_sts txt_id, mode, max_age, result" \
	"SELECT txt_id, mode, max_age, result FROM mta_sts WHERE domain = 'testing.test'" \
	"$(cat "$SRV/zones/testing.test.stsid") testing 604800 ok"
expect "testing.test: mx_patterns without CR" \
	"SELECT replace(mx_patterns, char(13), '<CR>') FROM mta_sts WHERE domain = 'testing.test'" \
	"mx1.testing.test"

echo "== insecure.test (delegated without DS)"
expect "insecure.test: MX row insecure" \
	"SELECT host, preference, dnssec FROM mx WHERE domain = 'insecure.test'" \
	"mx1.insecure.test 10 insecure"
expect "insecure.test: mx_address insecure" \
	"SELECT host, address, dnssec FROM mx_address WHERE host = 'mx1.insecure.test'" \
	"mx1.insecure.test $(awk '$1 == "mx1" && $3 == "A" { print $4 }' "$SRV/zones/insecure.test.zone") insecure"
expect "insecure.test: no TLSA row other than insecure" \
	"SELECT count(*) FROM tlsa WHERE host LIKE '%insecure.test' AND dnssec IS NOT 'insecure'" "0"
expect "insecure.test: MTA-STS works without DNSSEC (txt_dnssec insecure, mode enforce, ok)" \
	"SELECT txt_dnssec, mode, result FROM mta_sts WHERE domain = 'insecure.test'" \
	"insecure enforce ok"

echo "== bogus.test (MX, TXT, TLSA RRSIGs do not match)"
expect "bogus.test: no MX row marked secure" \
	"SELECT count(*) FROM mx WHERE domain = 'bogus.test' AND dnssec = 'secure'" "0"
expect "bogus.test: no address marked secure for a bogus.test host (bogus MX not followed)" \
	"SELECT count(*) FROM mx_address WHERE host LIKE '%.bogus.test' AND dnssec = 'secure'" "0"
expect "bogus.test: no TLSA marked secure" \
	"SELECT count(*) FROM tlsa WHERE host LIKE '%.bogus.test' AND dnssec = 'secure'" "0"
expect "bogus.test: no secure TXT, no policy mode" \
	"SELECT count(*) FROM mta_sts WHERE domain = 'bogus.test' AND (txt_dnssec = 'secure' OR mode IS NOT NULL)" "0"
expect_true "bogus.test: result dnssec-invalid recorded (fetch_log or mta_sts)" \
	"SELECT (SELECT count(*) FROM fetch_log WHERE domain = 'bogus.test' AND result = 'dnssec-invalid')
	      + (SELECT count(*) FROM mta_sts WHERE domain = 'bogus.test' AND result = 'dnssec-invalid') > 0"
expect_eq "bogus.test: policy not requested (its TXT is bogus)" "$(delta bogus.test)" 0

echo "== bogustlsa.test (only the TLSA RRset is bogus)"
expect "bogustlsa.test: MX row secure" \
	"SELECT host, preference, dnssec FROM mx WHERE domain = 'bogustlsa.test'" \
	"mx1.bogustlsa.test 10 secure"
expect "bogustlsa.test: no TLSA marked secure" \
	"SELECT count(*) FROM tlsa WHERE host = 'mx1.bogustlsa.test' AND dnssec = 'secure'" "0"
expect_true "bogustlsa.test: fetch_log tlsa dnssec-invalid" \
	"SELECT count(*) > 0 FROM fetch_log WHERE what = 'tlsa' AND result = 'dnssec-invalid'
	 AND domain IN ('bogustlsa.test', 'mx1.bogustlsa.test', '_25._tcp.mx1.bogustlsa.test')"
expect "bogustlsa.test: MTA-STS unaffected" \
	"SELECT mode, result FROM mta_sts WHERE domain = 'bogustlsa.test'" "enforce ok"

echo "== policy file and HTTPS failures"
expect "badsyntax.test: result sts-policy-invalid" \
	"SELECT result FROM mta_sts WHERE domain = 'badsyntax.test'" "sts-policy-invalid"
expect_true "badsyntax.test: error_detail names line 2" \
	"SELECT error_detail LIKE '%line 2%' FROM mta_sts WHERE domain = 'badsyntax.test'"
expect "badsyntax.test: mode not enforce" \
	"SELECT count(*) FROM mta_sts WHERE domain = 'badsyntax.test' AND mode = 'enforce'" "0"
expect "redirect.test: result sts-policy-fetch-error, no mode" \
	"SELECT result, mode FROM mta_sts WHERE domain = 'redirect.test'" "sts-policy-fetch-error <null>"
n=$(delta redirect.test)
expect_eq "redirect.test: one request, answered 301; redirect not followed" \
	"$( [ "$n" -gt 0 ] && awk '$1 == "mta-sts.redirect.test" { print $3, $4 }' "$NGINX_LOG" | tail -n "$n" | tr '\n' ' ')" \
	"/.well-known/mta-sts.txt 301 "
expect_true "oversized.test: result sts-policy-fetch-error or sts-policy-invalid, no mode" \
	"SELECT result IN ('sts-policy-fetch-error', 'sts-policy-invalid') AND mode IS NULL
	 FROM mta_sts WHERE domain = 'oversized.test'"
expect "oversized.test: no stored policy text over 64 KiB" \
	"SELECT count(*) FROM mta_sts WHERE domain = 'oversized.test' AND length(CAST(policy_text AS BLOB)) > 65536" "0"
expect "nopolicy.test (404): result sts-policy-fetch-error, no mode" \
	"SELECT result, mode FROM mta_sts WHERE domain = 'nopolicy.test'" "sts-policy-fetch-error <null>"
for d in wrongname expired untrusted; do
	expect "$d.test: result sts-webpki-invalid, no mode" \
		"SELECT result, mode FROM mta_sts WHERE domain = '$d.test'" "sts-webpki-invalid <null>"
	expect_eq "$d.test: no HTTP request after the failed handshake" "$(delta "$d.test")" 0
done

echo "== no usable _mta-sts TXT: no policy"
for d in twotxt noid notxt; do
	row=$(sq "SELECT coalesce(txt_id, '<null>'), coalesce(mode, '<null>'), coalesce(result, '<null>') FROM mta_sts WHERE domain = '$d.test'")
	case $row in
	"") ok "$d.test: no mta_sts row" ;;
	"<null> <null> "*) ok "$d.test: row with txt_id NULL, mode NULL ($row)" ;;
	*" <null> sts-policy-invalid") ok "$d.test: row with result sts-policy-invalid, mode NULL ($row)" ;;
	*) bad "$d.test: want no row / txt_id NULL / sts-policy-invalid, and mode NULL; got [$row]" ;;
	esac
	expect_eq "$d.test: policy not requested" "$(delta "$d.test")" 0
done

expect "fetch_log: every row has a result" "SELECT count(*) FROM fetch_log WHERE result IS NULL OR result = ''" "0"

# ------------------------------------------------------------------ re-fetch

echo "== re-fetch secure.test"
others() { awk '$1 ~ /^mta-sts\./ && $1 != "mta-sts.secure.test"' "$NGINX_LOG" | wc -l; }
others0=$(others)
n0=$(fetches secure.test)
pf0=$(sq "SELECT policy_fetched_at FROM mta_sts WHERE domain = 'secure.test'")
ck0=$(sq "SELECT checked_at FROM mta_sts WHERE domain = 'secure.test'")
sleep 1.1
fetch secure.test
expect_eq "same TXT id: exit status 0" "$FETCH_RC" 0
expect_eq "same TXT id: policy not downloaded again" "$(fetches secure.test)" "$n0"
expect "same TXT id: policy_fetched_at unchanged, mode and txt_id kept" \
	"SELECT policy_fetched_at, mode, txt_id, result FROM mta_sts WHERE domain = 'secure.test'" \
	"$pf0 enforce $STS_ID_SECURE ok"
expect_true "same TXT id: checked_at advanced" \
	"SELECT checked_at > ${ck0:-0} FROM mta_sts WHERE domain = 'secure.test'"
expect "same TXT id: still 2 MX, 3 mx_address, 4 TLSA rows (no duplicates)" \
	"SELECT (SELECT count(*) FROM mx WHERE domain = 'secure.test'),
	        (SELECT count(*) FROM mx_address WHERE host LIKE 'mx_.secure.test'),
	        (SELECT count(*) FROM tlsa WHERE host LIKE 'mx_.secure.test')" "2 3 4"

NEW_ID=20261124T000000
if "$SERVERS" set-sts-id "$SRV" secure.test "$NEW_ID" >"$WORK/set-sts-id.log" 2>&1; then
	ok "zone secure.test re-signed with TXT id $NEW_ID, nsd reloaded"
else
	bad "servers.sh set-sts-id: $(tr '\n' ' ' <"$WORK/set-sts-id.log")"
fi
sleep 1.1
fetch secure.test
expect_eq "new TXT id: exit status 0" "$FETCH_RC" 0
expect_eq "new TXT id: policy downloaded once more" "$(fetches secure.test)" "$((n0 + 1))"
expect "new TXT id: txt_id updated, result ok" \
	"SELECT txt_id, mode, result FROM mta_sts WHERE domain = 'secure.test'" "$NEW_ID enforce ok"
expect_true "new TXT id: policy_fetched_at advanced" \
	"SELECT policy_fetched_at > ${pf0:-0} FROM mta_sts WHERE domain = 'secure.test'"

expect "fetch_log: every row has a result (after the re-fetches)" \
	"SELECT count(*) FROM fetch_log WHERE result IS NULL OR result = ''" "0"

fetch --force secure.test
expect_eq "--force: exit status 0" "$FETCH_RC" 0
expect_eq "--force: policy downloaded again" "$(fetches secure.test)" "$((n0 + 2))"
expect "after re-fetches: still 2 MX, 3 mx_address, 4 TLSA rows (no duplicates)" \
	"SELECT (SELECT count(*) FROM mx WHERE domain = 'secure.test'),
	        (SELECT count(*) FROM mx_address WHERE host LIKE 'mx_.secure.test'),
	        (SELECT count(*) FROM tlsa WHERE host LIKE 'mx_.secure.test')" "2 3 4"
expect_eq "re-fetches of secure.test requested no other policy" "$(others)" "$others0"

# On-demand discovery: a queued domain is fetched by --queued, then unqueued.
echo "== discovery queue"
sq "INSERT INTO discovery(domain, first_seen, last_seen) VALUES ('testing.test', 1, 1)" >/dev/null
sq "DELETE FROM mta_sts WHERE domain = 'testing.test'" >/dev/null
fetch --queued
expect_eq "--queued: exit status 0" "$FETCH_RC" 0
expect "--queued: the queued domain was fetched" \
	"SELECT mode, result FROM mta_sts WHERE domain = 'testing.test'" "testing ok"
expect "--queued: the queue is empty afterwards" "SELECT count(*) FROM discovery" "0"

finish
