#!/usr/bin/env bash
# Alerts reach a real rsyslogd: the test starts rsyslogd on a private socket,
# runs `mxwatch analyze --syslog` in a mount namespace where /dev/log is that
# socket (syslog(3) always writes to /dev/log), and checks what rsyslog
# received: one line per alert, key=value, the hostile EHLO name (bare CR, ANSI
# escape, quotes, backslash, DEL, a control byte) escaped, no raw control
# bytes anywhere, and repeated alerts rate-limited with a suppressed count.
# Needs root (mount namespace) and rsyslog. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh
holder=
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }

T=$(mktemp -d /tmp/mxwatch-syslog.XXXXXX)
RPID=
cleanup() {
	[ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
if ! unshare -m true 2>"$T/unshare.err"; then
	echo "skip: rsyslog test: cannot create a mount namespace: $(head -1 "$T/unshare.err")"
	exit 77
fi

cat >"$T/rsyslog.conf" <<CONF
global(workDirectory="$T")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$T/log.sock" CreatePath="on")
template(name="raw" type="string" string="%syslogtag%|%syslogfacility-text%|%syslogseverity-text%|%msg%\n")
*.* action(type="omfile" file="$T/received.log" template="raw")
CONF
rsyslogd -n -f "$T/rsyslog.conf" -i "$T/rsyslog.pid" >"$T/rsyslogd.out" 2>&1 &
RPID=$!
for _ in $(seq 50); do [ -S "$T/log.sock" ] && break; sleep 0.1; done
check "rsyslogd listening on its own socket" test -S "$T/log.sock"

cat >"$T/mxwatch.conf" <<CONF
[syslog]
facility = local3
tag = mxwatch-test
alert_interval = 300
CONF

# Inside a private mount namespace: a fresh /dev holding the few nodes a
# process needs, plus /dev/log bound to the test socket. The host is untouched.
cap=pcaps/smtp-hostile-ehlo.pcap
unshare -m bash -c '
	set -e
	mkdir -p "'"$T"'/olddev"
	mount --rbind /dev "'"$T"'/olddev"
	mount -t tmpfs -o size=1m tmpfs /dev
	for n in null zero random urandom; do touch /dev/$n; mount --bind "'"$T"'/olddev/$n" /dev/$n; done
	touch /dev/log
	mount --bind "'"$T"'/log.sock" /dev/log
	exec "'"$M"'" analyze --json --db none --syslog --sensor mx-edge.1 --config "'"$T"'/mxwatch.conf" "'"$cap"'" "'"$cap"'"
' >"$T/out.json" 2>"$T/err.txt"
rc=$?
check "mxwatch ran (exit $rc)" test "$rc" -le 1
# Let rsyslog flush.
sent=$(sed -n 's/^alerts sent \([0-9]*\), suppressed by rate limit \([0-9]*\).*/\1/p' "$T/err.txt")
suppressed=$(sed -n 's/^alerts sent \([0-9]*\), suppressed by rate limit \([0-9]*\).*/\2/p' "$T/err.txt")
sent=${sent:-0}
suppressed=${suppressed:-0}
touch "$T/received.log"
# Let rsyslog flush.
for _ in $(seq 50); do [ "$(wc -l <"$T/received.log")" -ge "$sent" ] && [ "$sent" -gt 0 ] && break; sleep 0.1; done
findings=$(grep '"type":"finding"' "$T/out.json" | grep -c '"alert":true')
lines=$(wc -l <"$T/received.log")

echo "   mxwatch: $(grep '^alerts sent' "$T/err.txt")"
check "some alerts were sent ($sent)" test "$sent" -gt 0
check "rsyslog received one line per alert ($lines = $sent)" test "$lines" = "$sent"
check "the second copy of the capture was rate-limited ($suppressed suppressed)" \
	test "$suppressed" -gt 0
check "sent + suppressed = alerting findings ($sent + $suppressed = $findings)" \
	test $((sent + suppressed)) = "$findings"
check "tag and facility as configured" grep -q '^mxwatch-test\[[0-9]*\]:|local3|' "$T/received.log"
check "plaintext-auth alert received" grep -q 'finding=plaintext-auth severity=high ' "$T/received.log"
# The EHLO name on the wire is: evil CR name ESC [31m "quoted" \back DEL del ^A ctl
want='helo="evil\x0dname\x1b[31m\"quoted\"\\back\x7fdel\x01ctl"'
check "hostile EHLO name arrives escaped" grep -qF "$want" "$T/received.log"
check "no raw control bytes in what rsyslog received" \
	bash -c "! LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]' '$T/received.log'"
kv='^ ?sensor=mx-edge\.1 finding=[a-z-]+ severity=[a-z]+ session=[0-9a-f]{16} domain="[^"]*" mx_host="[^"]*" evidence=[a-z,-]+ rfc8460=[a-z0-9-]+ client=[0-9a-f.:]+ server=[0-9a-f.:]+ helo="([^"\\]|\\.)*" msg="([^"\\]|\\.)*"( suppressed=[0-9]+)?$'
check "every line is key=value from sensor= to msg=" \
	test "$(cut -d'|' -f4- "$T/received.log" | grep -cvE "$kv")" = 0
check "every JSON record names the sensor" \
	test "$(grep -vc '"sensor":"mx-edge.1"' "$T/out.json")" = 0
check "JSON keeps the raw name, escaped for JSON" \
	grep -qF '"helo_name":"evil\u000dname\u001b[31m\"quoted\"\\back\u007fdel\u0001ctl"' "$T/out.json"
check "the OSC-escaped recipient domain never became a policy domain" \
	bash -c "! grep -q 'pwn' '$T/received.log'"

# A database another process keeps locked: the store's failure reaches
# syslog too (waiting, giving up, and how many results were not stored).
"$M" policy import --db "$T/locked.db" etc/demo.policy >/dev/null
hold_lock "$T/locked.db" 30
before=$(wc -l <"$T/received.log")
unshare -m bash -c '
	set -e
	mount --rbind /dev "'"$T"'/olddev"
	mount -t tmpfs -o size=1m tmpfs /dev
	for n in null zero random urandom; do touch /dev/$n; mount --bind "'"$T"'/olddev/$n" /dev/$n; done
	touch /dev/log
	mount --bind "'"$T"'/log.sock" /dev/log
	exec "'"$M"'" analyze -q --db-wait 1 --db "'"$T"'/locked.db" --syslog --config "'"$T"'/mxwatch.conf" "'"$cap"'"
' >/dev/null 2>"$T/locked.err"
rc=$?
kill "$holder"
for _ in $(seq 50); do grep -q "store-incomplete" "$T/received.log" && break; sleep 0.1; done
new=$(tail -n +"$((before + 1))" "$T/received.log")
check "locked database: exit 2 ($rc)" test "$rc" = 2
check "... error=store-busy, store-gave-up and store-incomplete reach syslog" \
	bash -c 'grep -q "error=store-busy" <<<"$1" && grep -q "error=store-gave-up" <<<"$1" &&
		grep -q "error=store-incomplete.* lost=[1-9]" <<<"$1"' _ "$new"
echo "$pass passed, $fail failed"
[ "$pass" -gt 0 ] || exit 1
[ "$fail" = 0 ]
