#!/usr/bin/env bash
# `mxwatch capture` on a real interface: the test makes two network
# namespaces joined by a veth pair, runs the sensor on one end as an
# unprivileged user, replays corpus captures with tcpreplay on the other, and
# checks that the live findings equal an offline `analyze` of the same files,
# that SIGHUP mid-traffic loses no session, that SIGTERM flushes every open
# session, and (from /proc/PID/status) that the process no longer runs as
# root. Two capture threads share the interface through an AF_PACKET fanout
# group, so the kernel's split by flow is tested too. Needs root. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh

id=$$
NSA=mxwcap$id
NSB=mxwrep$id
VA=mxwa$id
VB=mxwb$id
T=$(mktemp -d /tmp/mxwatch-live.XXXXXX)
chmod 755 "$T"
PID=
holder=
cleanup() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

skip() { echo "skip: live capture test: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, a veth pair)"
# Some containers cannot make namespaces at all: say so and skip, rather
# than fail on what the machine cannot do.
ip netns add "$NSA" 2>"$T/netns.err" && ip netns add "$NSB" 2>>"$T/netns.err" ||
	skip "cannot create network namespaces: $(head -1 "$T/netns.err")"
ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB" 2>"$T/netns.err" ||
	skip "cannot create a veth pair: $(head -1 "$T/netns.err")"
ip -n "$NSA" link set "$VA" mtu 65535 up && ip -n "$NSB" link set "$VB" mtu 65535 up &&
	ip -n "$NSA" link set lo up && ip -n "$NSB" link set lo up
check "namespaces and veth pair created" test $? = 0

mkdir -p "$T/db"
"$M" policy import --db "$T/db/live.db" etc/demo.policy >/dev/null
cp "$T/db/live.db" "$T/db/offline.db"
set1="pcaps/smtp-starttls-stripped.pcap pcaps/smtp-plain.pcap pcaps/smtp-starttls-tls12.pcap"
# set2 repeats a session of set1: its alerts fall to the rate limiter,
# which must remember set1's across the reload in between.
set2="pcaps/smtp-starttls-refused-454.pcap pcaps/smtp-injection.pcap pcaps/smtp-auth-login.pcap pcaps/smtp-starttls-stripped.pcap pcaps/nonsmtp-mixed.pcap"

# --syslog exercises the alert rate limiter; the alerts must not reach the
# host's syslog, so /dev/log is blanked in a private mount namespace.
NOSYSLOG=(unshare -m sh -c '[ -e /dev/log ] && mount --bind /dev/null /dev/log; exec "$@"' sh)
# Records go to a file the sensor reopens on SIGHUP (log rotation), in a
# directory it may still write to once it runs as nobody.
mkdir -p "$T/out"
chown nobody "$T/out"
"${NOSYSLOG[@]}" ip netns exec "$NSA" "$M" capture -i "$VA" --json --db "$T/db/live.db" --config etc/demo.conf \
	--user nobody --stats-interval 0 --workers 2 --syslog --sensor live-a \
	--output "$T/out/live.json" >"$T/stdout.txt" 2>"$T/live.err" &
PID=$!
for _ in $(seq 100); do grep -q "running on" "$T/live.err" 2>/dev/null && break; sleep 0.1; done
check "sensor started, two capture threads in a fanout group" \
	grep -q "running on 1 interface(s) with 2 capture thread(s)" "$T/live.err"
uid=$(awk '/^Uid:/ {print $2, $3, $4, $5}' /proc/$PID/status 2>/dev/null)
nobody=$(id -u nobody)
check "runs as nobody after start (Uid: $uid)" test "$uid" = "$nobody $nobody $nobody $nobody"
check "no capabilities left" bash -c "grep -q '^CapEff:[[:space:]]*0000000000000000' /proc/$PID/status"

replay() {
	for f in "$@"; do
		ip netns exec "$NSB" tcpreplay -q -t -i "$VB" "$f" >/dev/null 2>&1 || return 1
	done
}
# Replays a set, then sends the sensor SIGNAL and waits up to 5 s for a
# line matching PATTERN in its log.
replay_then_signal() { # SIGNAL PATTERN FILE...
	local sig=$1 pattern=$2
	shift 2
	replay "$@" || return 1
	sleep 0.5
	kill "-$sig" "$PID"
	for _ in $(seq 50); do grep -qE "$pattern" "$T/live.err" && return 0; sleep 0.1; done
}
replay $set1
sleep 0.5
# As logrotate does: move the file away, then SIGHUP.
mv "$T/out/live.json" "$T/out/live.json.1"
replay_then_signal HUP "reloaded"
check "SIGHUP reloads configuration and policy" grep -q "configuration and policy reloaded" "$T/live.err"
# Every capture thread reads its handles' counters on its next wake-up
# (within 200 ms), then the main thread logs the sums: wait for the line.
# Another process holds the database's write lock for 4 s while set2
# arrives: results wait in the writer's queue and are stored once the lock
# is gone (checked by the stored count below).
hold_lock "$T/db/live.db" 4
replay_then_signal USR1 "^capture $VA: received" $set2
wait "$holder"
holder=
for _ in $(seq 60); do grep -q "notice=store-recovered" "$T/live.err" && break; sleep 0.1; done
check "database locked mid-run: said so ($(grep -m1 -o 'error=store-busy' "$T/live.err"))" \
	grep -q "error=store-busy" "$T/live.err"
check "... and storing resumed when it was released: $(grep -m1 -o 'notice=store-recovered.*dropped=[0-9]*' "$T/live.err")" \
	grep -q "notice=store-recovered.* dropped=0" "$T/live.err"
check "SIGUSR1 logs capture statistics" grep -qE "^capture $VA: received [1-9][0-9]*, dropped 0" "$T/live.err"
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
check "SIGTERM ends the sensor cleanly (exit $rc)" test "$rc" = 0

# (loopback captures carry segments up to 64 KiB: the veth MTU allows them.)
# The same files offline, in the same order, against the same policy.
"${NOSYSLOG[@]}" "$M" analyze --json --syslog --db "$T/db/offline.db" --config etc/demo.conf $set1 $set2 >"$T/offline.json" 2>"$T/offline.err"
summarise() {
	python3 -c '
import json, sys
sessions, findings = [], []
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["type"] == "session":
        sessions.append((r["client"]["port"], r["server"]["ip"], r["smtp"]["starttls"]["offered"],
                         (r["tls"] or {}).get("version")))
    elif r["type"] == "finding":
        findings.append((r["id"], r["domain"], r["server_ip"]))
print(len(sessions), sorted(sessions), sorted(findings))
' "$1"
}
check "records went to --output, none to standard output" test ! -s "$T/stdout.txt"
# (Sessions are written when their flows end, so set1's may land in either.)
check "SIGHUP opened a new file by the name (inodes $(stat -c %i "$T/out/live.json.1") -> $(stat -c %i "$T/out/live.json"))" \
	test "$(stat -c %i "$T/out/live.json.1")" != "$(stat -c %i "$T/out/live.json")"
check "the reopened file holds the sessions written after it ($(grep -c '"type":"session"' "$T/out/live.json"))" \
	test "$(grep -c '"type":"session"' "$T/out/live.json")" -gt 0
cat "$T/out/live.json.1" "$T/out/live.json" >"$T/live.json"
check "every record names the sensor" test "$(grep -vc '"sensor":"live-a"' "$T/live.json")" = 0
live=$(summarise "$T/live.json")
offline=$(summarise "$T/offline.json")
check "every replayed session came out (live: ${live%% *}, offline: ${offline%% *})" \
	test "${live%% *}" -gt 0 -a "${live%% *}" = "${offline%% *}"
check "live findings and sessions equal the offline analysis" test "$live" = "$offline"
check "findings were raised (stripped, refused, injection...)" \
	bash -c "grep -q '\"id\":\"starttls-stripped\"' '$T/live.json' && grep -q '\"id\":\"starttls-refused\"' '$T/live.json' && grep -q '\"id\":\"starttls-injection\"' '$T/live.json'"
# DNS over UDP passes the default filter and is counted like offline.
live_udp=$(sed -n 's/.*udp packets \([0-9]*\).*/\1/p' "$T/live.err")
offline_udp=$(sed -n 's/.*udp packets \([0-9]*\).*/\1/p' "$T/offline.err")
check "UDP datagrams counted live as offline ($live_udp)" test "${live_udp:-0}" -gt 0 -a "$live_udp" = "$offline_udp"
# The alert rate limiter keeps its memory across the reload (same [syslog]
# settings): sent and suppressed counts equal one uninterrupted offline run.
live_alerts=$(grep '^alerts sent' "$T/live.err")
offline_alerts=$(grep '^alerts sent' "$T/offline.err")
check "alert counts across SIGHUP equal offline ($live_alerts)" test -n "$live_alerts" -a "$live_alerts" = "$offline_alerts"
check "the repeated session's alerts were held back" grep -q "suppressed by rate limit [1-9]" "$T/live.err"
stored=$(sqlite3 "$T/db/live.db" "SELECT count(*) FROM sessions" 2>/dev/null)
distinct=$(grep '"type":"session"' "$T/live.json" | grep -o '"id":"[0-9a-f]\{16\}"' | sort -u | wc -l)
check "sessions stored after dropping privileges ($stored of $distinct distinct)" \
	test "${stored:-0}" -gt 0 -a "${stored:-0}" = "$distinct"
finish
