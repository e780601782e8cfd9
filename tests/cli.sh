#!/usr/bin/env bash
# Command-line behaviour of `mxwatch analyze`: stdin input, several files in
# one run, exit statuses, error messages naming the file, and nDPI's
# clear-text credentials verdict next to our own AUTH detection.
set -u
cd "$(dirname "$0")/.."
M=./mxwatch
pass=0
fail=0
check() { # check NAME COMMAND...: the command must succeed
	local name=$1
	shift
	if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $name"; fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# stdin gives the same records as the file
$M analyze --json pcaps/smtp-plain.pcap >"$tmp/file.json" 2>/dev/null
$M analyze --json - <pcaps/smtp-plain.pcap >"$tmp/stdin.json" 2>/dev/null
check "stdin equals file (but for the input's name)" python3 -c "
import json
f = [json.loads(l) for l in open('$tmp/file.json')]
s = [json.loads(l) for l in open('$tmp/stdin.json')]
assert f and {r.pop('pcap') for r in f} == {'pcaps/smtp-plain.pcap'}, f
assert {r.pop('pcap') for r in s} == {'-'} and f == s
"
check "stdin gives one session" test "$(grep -c '"type":"session"' "$tmp/stdin.json")" = 1

# --sensor: every record says which sensor saw it; the default is the host
# name (other bytes as '_'); a name that is not safe everywhere is refused
$M analyze --json --db none --sensor site-a.mx_1 pcaps/smtp-starttls-stripped.pcap >"$tmp/sensor.json" 2>/dev/null
$M analyze --json --db none --flows --sensor site-a.mx_1 pcaps/smtp-plain.pcap >>"$tmp/sensor.json" 2>/dev/null
$M analyze --json --db none pcaps/smtp-plain.pcap >"$tmp/sensor-default.json" 2>/dev/null
check "--sensor is on every session, finding and flow record" python3 -c "
import json, re, socket
recs = [json.loads(l) for l in open('$tmp/sensor.json')]
assert {r['type'] for r in recs} == {'session', 'finding', 'flow'}, recs
assert all(r['sensor'] == 'site-a.mx_1' for r in recs), recs
want = re.sub(r'[^A-Za-z0-9._-]', '_', socket.gethostname())[:63]
d = [json.loads(l) for l in open('$tmp/sensor-default.json')]
assert d and all(r['sensor'] == want for r in d), (want, d)
"
for bad in '' 'two words' 'a/b' "$(printf 'x%.0s' $(seq 64))" 'esc\033[31m'; do
	rc=0
	$M analyze --db none --sensor "$bad" pcaps/smtp-plain.pcap >/dev/null 2>"$tmp/sensor.err" || rc=$?
	check "--sensor '${bad:0:20}' refused (exit $rc) with a reason" \
		bash -c "test $rc = 2 && grep -q 'is not a sensor name' '$tmp/sensor.err'"
done

# several files: the sum of their sessions
n1=$($M analyze --json pcaps/smtp-plain.pcap 2>/dev/null | grep -c '"type":"session"')
n2=$($M analyze --json pcaps/smtp-multi.pcapng 2>/dev/null | grep -c '"type":"session"')
n12=$($M analyze --json pcaps/smtp-plain.pcap pcaps/smtp-multi.pcapng 2>/dev/null | grep -c '"type":"session"')
check "two files in one run" test "$n12" = $((n1 + n2))

# exit statuses and messages
$M analyze pcaps/smtp-plain.pcap >/dev/null 2>&1
check "clean run exits 0" test $? = 0
$M analyze >/dev/null 2>&1
check "no file is a usage error" test $? = 2
$M analyze --bogus pcaps/smtp-plain.pcap >/dev/null 2>&1
check "unknown option is a usage error" test $? = 2
$M analyze --max-flows=abc pcaps/smtp-plain.pcap 2>"$tmp/err" >/dev/null
check "bad number is a usage error" test $? = 2
check "bad number names the option" grep -q -- '--max-flows' "$tmp/err"
$M analyze --workers 0 pcaps/smtp-plain.pcap >/dev/null 2>"$tmp/err"
check "--workers 0 is a usage error naming the range" bash -c "test $? = 2 && grep -q -- '--workers: must be 1\.\.64' '$tmp/err'"
# --db none: no database at all, even where the default one would be
mkdir -p "$tmp/home"
MXWATCH_DB="$tmp/home/should-not-exist.db" HOME="$tmp/home" $M analyze --db none --json \
	pcaps/smtp-plain.pcap >"$tmp/none.json" 2>/dev/null
check "--db none analyses without creating a database" \
	bash -c "grep -q '\"type\":\"session\"' '$tmp/none.json' && [ -z \"\$(ls -A '$tmp/home')\" ] && [ ! -e none ]"
$M frobnicate >/dev/null 2>&1
check "unknown command exits 2" test $? = 2
$M analyze --help | grep -q 'SYNOPSIS'
check "analyze --help" test $? = 0
head -c 3000 pcaps/smtp-starttls-tls12.pcap >"$tmp/cut.pcap"
$M analyze --json "$tmp/cut.pcap" pcaps/smtp-plain.pcap >"$tmp/out" 2>"$tmp/err"
check "truncated input exits 2" test $? = 2
check "error names file and packet" grep -q "cut.pcap: packet [0-9]" "$tmp/err"
check "later files still analysed" grep -q '"greeting_host"' "$tmp/out"
check "unsupported link type named" bash -c "printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\0\0\0\0\0\0\0\0\xff\xff\0\0\x93\0\0\0' >'$tmp/dlt.pcap'; $M analyze '$tmp/dlt.pcap' 2>&1 | grep -q 'unsupported link type 147'"

# a bad configuration line names file, line and key
printf '[rules]\nstarttls-unused = loud\n' >"$tmp/bad.conf"
$M analyze --config "$tmp/bad.conf" pcaps/smtp-plain.pcap >/dev/null 2>"$tmp/err"
check "bad config exits 2" test $? = 2
check "bad config names file, line and key" grep -q "bad.conf:2: key 'starttls-unused'" "$tmp/err"
printf '[rules]\ntls-weak = off\n[protect Example.TEST]\nmx = 127.0.0.2\n[allow]\nplaintext = not-an-ip\n' >"$tmp/bad2.conf"
$M analyze --config "$tmp/bad2.conf" pcaps/smtp-plain.pcap >/dev/null 2>"$tmp/err"
check "bad address names line 6" grep -q "bad2.conf:6: key 'plaintext'" "$tmp/err"
check "sample config parses" bash -c "$M analyze -q --no-store --config etc/mxwatch.conf pcaps/smtp-plain.pcap 2>/dev/null"
# a protected domain ties sessions to its MX address; off turns a rule off
printf '[rules]\nstarttls-lost = off\n[protect example.test]\nmx = 127.0.0.2\n' >"$tmp/p.conf"
rm -f "$tmp/p.db"*
printf 'mta-sts example.test mode=enforce max_age=86400 mx=mx.example.test\n' >"$tmp/p.policy"
$M policy import --db "$tmp/p.db" "$tmp/p.policy" >/dev/null
$M analyze --json --no-store --db "$tmp/p.db" --config "$tmp/p.conf" pcaps/smtp-plain.pcap 2>/dev/null >"$tmp/p.json"
check "protected domain evidence" grep -q '"evidence":\["rcpt","protected"\]' "$tmp/p.json"
check "rule turned off" bash -c "! grep -q starttls-lost '$tmp/p.json'"
$M analyze --no-store --db "$tmp/p.db" --fail-on high pcaps/smtp-plain.pcap >/dev/null 2>&1
check "--fail-on high exits 1 on a high finding" test $? = 1
$M analyze --no-store --db "$tmp/p.db" --fail-on critical pcaps/smtp-plain.pcap >/dev/null 2>&1
check "--fail-on critical exits 0 without one" test $? = 0
# policy subcommands
$M policy show --db "$tmp/p.db" example.test | grep -q "mode enforce"
check "policy show" test $? = 0
$M policy list --db "$tmp/p.db" | grep -q "^example.test"
check "policy list" test $? = 0
$M policy export --db "$tmp/p.db" | grep -q "^mta-sts example.test mode=enforce max_age=86400 mx=mx.example.test"
check "policy export" test $? = 0
$M policy show --db "$tmp/p.db" nothing.test >/dev/null
check "policy show of an unknown domain exits 2" test $? = 2
$M policy frob >/dev/null 2>&1
check "unknown policy subcommand exits 2" test $? = 2
# policy show: "recent fetches:" only above fetches there are
$M policy show --db "$tmp/p.db" example.test >"$tmp/show.out"
check "policy show without fetches prints no empty 'recent fetches:'" \
	bash -c "grep -q 'mode enforce' '$tmp/show.out' && ! grep -q 'recent fetches' '$tmp/show.out'"
cp "$tmp/p.db" "$tmp/f.db"
sqlite3 "$tmp/f.db" "INSERT INTO fetch_log(ts, domain, what, result, detail)
	VALUES (1795000000, 'example.test', 'mta-sts', 'ok', NULL)"
$M policy show --db "$tmp/f.db" example.test >"$tmp/show.out"
check "policy show with a fetch: the header, then the fetch" python3 -c "
l = open('$tmp/show.out').read().splitlines()
i = l.index('  recent fetches:')
assert l[i + 1].split()[:3] == ['2026-11-18T11:06:40Z', 'mta-sts', 'ok'], l
"
# policy import quotes what it cannot read escaped, never as raw bytes
head -c 2000 pcaps/smtp-starttls-tls12.pcap >"$tmp/bin.policy"
printf 'mta-sts example.test mode=\033[31menforce max_age=86400 mx=mx.example.test\n' >"$tmp/esc.policy"
printf 'mx example.test 10 mx.example.test\naddress mx.example.test 127.0.0.\2330\n' >"$tmp/esc2.policy"
printf '[rules]\nstarttls-unused = \033]0;owned\007\n' >"$tmp/esc.conf"
printable() { # FILE: only printable ASCII and newlines
	python3 -c "import sys; e = open(sys.argv[1], 'rb').read(); sys.exit(0 if e and all(32 <= b < 127 or b == 10 for b in e) else 1)" "$1"
}
export -f printable
for f in bin esc esc2; do
	$M policy import --db "$tmp/imp.db" "$tmp/$f.policy" >/dev/null 2>"$tmp/$f.err"
	rc=$?
	check "policy import of $f.policy: exit 2 ($rc), the message printable: $(head -c 120 "$tmp/$f.err")" \
		bash -c "[ $rc = 2 ] && printable '$tmp/$f.err'"
done
check "a binary file's bytes quoted as \\xHH" grep -q "record: unknown type (mx, address, mta-sts, tlsa, tlsrpt) '\\\\xd4\\\\xc3\\\\xb2\\\\xa1" "$tmp/bin.err"
check "an escape sequence in a policy value quoted as \\x1b" grep -qF "mode: unknown value '\\x1b[31menforce'" "$tmp/esc.err"
check "a control byte in an address quoted as \\x9b" grep -qF "'127.0.0.\\x9b0'" "$tmp/esc2.err"
$M analyze --config "$tmp/esc.conf" pcaps/smtp-plain.pcap >/dev/null 2>"$tmp/escc.err"
check "a control byte in the configuration quoted escaped" \
	bash -c "[ $? = 2 ] && printable '$tmp/escc.err' && grep -qF \"'\\x1b]0;owned\\x07' is not off\" '$tmp/escc.err'"
# report --domain with nothing stored says so instead of printing nothing
rm -f "$tmp/r.db"*
$M policy import --db "$tmp/r.db" etc/demo.policy >/dev/null
$M analyze -q --db "$tmp/r.db" --config etc/demo.conf pcaps/smtp-starttls-stripped.pcap 2>/dev/null
$M report --db "$tmp/r.db" --domain nosuch.test --json >"$tmp/r.out" 2>"$tmp/r.err"
check "report --domain nosuch --json: exit 2, said on stderr, nothing on stdout" \
	bash -c "[ $? = 2 ] && grep -q \"nothing stored for domain 'nosuch.test'\" '$tmp/r.err' && [ ! -s '$tmp/r.out' ]"
$M report --db "$tmp/r.db" --domain nosuch.test >/dev/null 2>"$tmp/r.err"
check "report --domain nosuch (summary): exit 2 too" \
	bash -c "[ $? = 2 ] && grep -q 'nothing stored' '$tmp/r.err'"
$M report --db "$tmp/r.db" --domain example.test --json >"$tmp/r.out" 2>"$tmp/r.err"
check "report --domain of a stored domain: exit 0, one report" \
	bash -c "[ $? = 0 ] && [ \$(wc -l <'$tmp/r.out') = 1 ] && [ ! -s '$tmp/r.err' ]"
$M report --db "$tmp/r.db" --domain example.test --json --from 2001-01-01 --to 2001-01-02 >/dev/null 2>"$tmp/r.err"
check "report --domain outside its dates: exit 2, naming the range" \
	bash -c "[ $? = 2 ] && grep -q 'in that date range' '$tmp/r.err'"
# help texts: every option's description starts in one column
check "--help of capture, analyze, policy, report and prune: options aligned" python3 -c "
import re, subprocess
for cmd in ('capture', 'analyze', 'policy', 'report', 'prune'):
    out = subprocess.run(['$M', cmd, '--help'], capture_output=True, text=True).stdout
    block = out.split('\nOPTIONS\n')[1].split('\n\n')[0].splitlines()
    cols = {}
    for l in block:
        if l.startswith('    -'):
            m = re.search(r'\S  +(\S)', l[4:])
            if m:
                cols.setdefault(4 + m.start(1), []).append(l)
        else:
            cols.setdefault(len(l) - len(l.lstrip(' ')), []).append(l)
    assert len(cols) == 1, (cmd, cols)
    assert any(l.startswith('    -h, --help ') for l in block), cmd
"
$M --help | grep -q '^    prune  '
check "mxwatch --help lists prune" test $? = 0

# passive DNS: answers seen on the wire tie later sessions to their domain,
# also in a later run (stored as observed data, apart from validated data)
rm -f "$tmp/o.db"*
$M analyze -q --db "$tmp/o.db" pcaps/nonsmtp-mixed.pcap 2>"$tmp/err" >/dev/null
check "dns responses parsed" grep -q "dns responses 5: ok=5, observed records 5" "$tmp/err"
check "observed rows stored" test "$(sqlite3 "$tmp/o.db" "SELECT count(*) FROM observed_dns WHERE kind='mx' AND name='example.test' AND value='mx.example.test'")" = 1
$M analyze --json --no-store --db "$tmp/o.db" pcaps/smtp-starttls-tls12.pcap 2>/dev/null >"$tmp/o.json"
check "session tied by observed DNS" grep -q '"domain":"example.test","mx_host":"mx.example.test","evidence":\["sni","dns-observed"\]\|"evidence":\["dns-observed"\]' "$tmp/o.json"

# on-demand discovery: off by default; when on, unknown recipient domains are queued
rm -f "$tmp/q.db"*
$M analyze -q --db "$tmp/q.db" pcaps/smtp-plain.pcap 2>/dev/null
check "discovery is off by default" test "$(sqlite3 "$tmp/q.db" "SELECT count(*) FROM discovery")" = 0
printf '[discovery]\nenabled = yes\nper_minute = 5\n' >"$tmp/q.conf"
$M analyze -q --db "$tmp/q.db" --config "$tmp/q.conf" pcaps/smtp-plain.pcap pcaps/thirdparty/ndpi-smtp.pcap 2>/dev/null
check "discovery queues unknown recipient domains" \
	test "$(sqlite3 "$tmp/q.db" "SELECT group_concat(domain, ' ') FROM (SELECT domain FROM discovery ORDER BY domain)")" = "example.test pigeon.eyrie.af.mil"
printf 'mta-sts example.test mode=testing max_age=60 mx=mx.example.test\n' >"$tmp/q.policy"
rm -f "$tmp/q2.db"*
$M policy import --db "$tmp/q2.db" "$tmp/q.policy" >/dev/null
$M analyze -q --db "$tmp/q2.db" --config "$tmp/q.conf" pcaps/smtp-plain.pcap 2>/dev/null
check "domains with cached policy are not queued" test "$(sqlite3 "$tmp/q2.db" "SELECT count(*) FROM discovery")" = 0

# one session's domains never leak into the next one's (rules reuse scratch state)
printf 'mx example.test 10 mx.example.test\naddress mx.example.test 127.0.0.2\n' >"$tmp/l.policy"
rm -f "$tmp/l.db"*
$M policy import --db "$tmp/l.db" "$tmp/l.policy" >/dev/null
$M analyze --json --no-store --db "$tmp/l.db" pcaps/smtp-plain.pcap pcaps/thirdparty/ndpi-smtp.pcap \
	pcaps/thirdparty/ndpi-smtps.pcapng 2>/dev/null >"$tmp/l.json"
check "each session keeps only its own domains" python3 -c "
import json
recs = [json.loads(l) for l in open('$tmp/l.json') if '\"type\":\"session\"' in l]
doms = [r['policy']['domains'] for r in recs]
assert doms == [['example.test'], ['pigeon.eyrie.af.mil'], []], doms
"

# nDPI's verdict on clear-text credentials agrees with our AUTH detection
for cap in smtp-auth-plaintext smtp-auth-login smtp-plain; do
	$M analyze --json --ndpi=all pcaps/$cap.pcap 2>/dev/null >"$tmp/ndpi.json"
	check "$cap: nDPI and mxwatch agree on credentials" python3 -c "
import json, sys
r = [json.loads(l) for l in open('$tmp/ndpi.json')][0]
ours = r['smtp']['auth_before_tls']
assert r['ndpi']['protocol'] == 'SMTP', r['ndpi']
assert r['ndpi']['cleartext_credentials'] == ours and r['ndpi']['credentials_agree'], r
assert ours == ('auth' in '$cap')
"
done
# non-SMTP flows are named by nDPI under --flows and skipped in session records
check "no sessions from non-mail capture" test "$($M analyze --json pcaps/nonsmtp-mixed.pcap 2>/dev/null | grep -c session)" = 0

# --findings-only: exactly the finding records of the full run, in order
$M policy import --db "$tmp/fo.db" etc/demo.policy >/dev/null
all_caps=$(find pcaps -name '*.pcap' -o -name '*.pcapng' | sort)
$M analyze --json --no-store --db "$tmp/fo.db" --config etc/demo.conf $all_caps 2>/dev/null |
	grep '"type":"finding"' >"$tmp/full.findings"
$M analyze --json --findings-only --no-store --db "$tmp/fo.db" --config etc/demo.conf $all_caps \
	2>/dev/null >"$tmp/only.findings"
check "--findings-only --json: the $(wc -l <"$tmp/full.findings") finding records of the full run, nothing else" \
	bash -c "test -s '$tmp/full.findings' && cmp -s '$tmp/full.findings' '$tmp/only.findings'"
$M analyze --findings-only --no-store --db "$tmp/fo.db" --config etc/demo.conf \
	pcaps/smtp-starttls-tls12.pcap pcaps/smtp-plain.pcap 2>/dev/null >"$tmp/only.txt"
check "--findings-only table: the session with findings, not the clean one" \
	bash -c "grep -q 127.0.0.2:25 '$tmp/only.txt' && ! grep -q 127.0.0.3:25 '$tmp/only.txt'"

# The table: certificate cell (expired at the capture's time, from the
# certificate's notAfter; openssl says 2021-01-01), cut cells marked and
# columns kept, no "alerts sent" line without --syslog
$M analyze --db none pcaps/smtp-starttls-expired-cert.pcap pcaps/smtp-hostile-ehlo.pcap \
	>"$tmp/table.txt" 2>"$tmp/table.err"
check "table: the expired leaf is marked (openssl: notAfter $(openssl x509 -in pcaps/certs/mx-expired.example.test.pem -noout -enddate | cut -d= -f2))" \
	grep -q "mx.example.test expired" "$tmp/table.txt"
check "table: a long hostile HELO is cut with a marker and every column stays in place" python3 -c "
lines = [l for l in open('$tmp/table.txt') if l[:4] in ('star', '2026')]
col = lines[0].index('verdict')
assert len(lines) == 3 and all(l[col - 1] == ' ' and l[col] != ' ' for l in lines[1:]), lines
assert any('~ ' in l for l in lines[1:]), lines
"
check "no 'alerts sent' line without --syslog" bash -c "! grep -q '^alerts sent' '$tmp/table.err'"

# Offline records name the capture file their flow began in
$M analyze --json --db none --workers 2 pcaps/smtp-plain.pcap pcaps/smtp-starttls-stripped.pcap \
	2>/dev/null >"$tmp/pcap.json"
check "session and finding records name their capture file" python3 -c "
import json
recs = [json.loads(l) for l in open('$tmp/pcap.json')]
by = {(r['type'], r['pcap']) for r in recs}
assert by == {('session', 'pcaps/smtp-plain.pcap'), ('finding', 'pcaps/smtp-plain.pcap'),
              ('session', 'pcaps/smtp-starttls-stripped.pcap'),
              ('finding', 'pcaps/smtp-starttls-stripped.pcap')}, by
"

# The progress bar on a terminal (a pty from script(1)) never glues itself
# to a table row; piped, it is not drawn at all. 4,000 sessions 10 ms apart
# (20 MB: over the bar's 16 MB threshold), rows printed while reading.
python3 tests/pcaplib.py repeat pcaps/smtp-plain.pcap "$tmp/tty.pcap" 4000 10000000
if command -v script >/dev/null; then
	script -qec "$M analyze --db none --workers 1 $tmp/tty.pcap" "$tmp/tty.out" >/dev/null 2>&1
	check "progress bar on a terminal: drawn, and no table row glued to it" python3 -c "
raw = open('$tmp/tty.out', 'rb').read().decode('utf-8', 'replace')
lines = [l.rstrip('\r') for l in raw.split('\n')]
rows = [l for l in lines if '127.0.0.2:25' in l]
glued = [l for l in rows if not l.split('\r')[-1].startswith('20') or '[#' in l.split('\r')[-1]]
assert raw.count('[#') >= 1 and len(rows) == 4000 and not glued, (raw.count('[#'), len(rows), glued[:1])
"
else
	echo "skip: script(1) is not installed: the pty check did not run"
fi
$M analyze --db none --workers 1 "$tmp/tty.pcap" >"$tmp/piped.out" 2>"$tmp/piped.err"
check "piped: no progress bar in the output or on stderr" \
	bash -c "! grep -q '\[#' '$tmp/piped.out' '$tmp/piped.err'"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
