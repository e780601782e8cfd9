#!/usr/bin/env bash
# Many sensors, one view, over the shipped rsyslog RELP configurations:
# three sensor namespaces each run `mxwatch capture` on their own veth pair
# (captures replayed with tcpreplay from a fourth namespace) and a real
# rsyslogd that follows the sensor's records file (imfile) and forwards it
# over RELP (omrelp, disk-assisted queue) to a collector namespace, whose
# rsyslogd (imrelp) files the records per sensor. Mid-run the collector's
# rsyslogd is stopped for ten seconds while traffic goes on, and one sensor
# (its mxwatch and its rsyslogd) is restarted during the outage. At the end
# The sensors' policies come from the collector's `policy export`.
# `mxwatch ingest` + `report` on the collector must hold exactly what the
# three sensors produce offline from the same captures: the sensors' own
# record files, and `analyze` of the captures, per sensor. Needs root.
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh

id=$$
NSC=mxwcol$id
NSR=mxwrpl$id
T=$(mktemp -d /tmp/mxwatch-net.XXXXXX)
chmod 755 "$T"
declare -A CAP_PID RS_PID
COL_PID=
cleanup() {
	for p in "${CAP_PID[@]}" "${RS_PID[@]}" $COL_PID; do
		kill -KILL "$p" 2>/dev/null
	done
	for n in 1 2 3; do ip netns del "mxws$n$id" 2>/dev/null; done
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSR" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

skip() { echo "skip: network-wide test: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, veth pairs)"
command -v rsyslogd >/dev/null || skip "rsyslog is not installed"
[ -e /usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so ] || [ -n "$(find /usr/lib -name omrelp.so 2>/dev/null | head -1)" ] ||
	skip "rsyslog-relp is not installed (omrelp/imrelp)"
command -v tcpreplay >/dev/null || skip "tcpreplay is not installed"
ip netns add "$NSC" 2>"$T/netns.err" && ip netns add "$NSR" 2>>"$T/netns.err" ||
	skip "cannot create network namespaces: $(head -1 "$T/netns.err")"
ip -n "$NSC" link set lo up
ip -n "$NSR" link set lo up

# Sensor n: namespace mxwsN, capture interface cN (replayed into from rN in
# the replay namespace), uplink uN 10.77.N.1 to the collector's dN 10.77.N.2.
for n in 1 2 3; do
	ns=mxws$n$id
	ip netns add "$ns" &&
		ip link add "c$n$id" netns "$ns" type veth peer name "r$n$id" netns "$NSR" &&
		ip link add "u$n$id" netns "$ns" type veth peer name "d$n$id" netns "$NSC" &&
		ip -n "$ns" link set lo up &&
		ip -n "$ns" link set "c$n$id" mtu 65535 up && ip -n "$NSR" link set "r$n$id" mtu 65535 up &&
		ip -n "$ns" addr add "10.77.$n.1/24" dev "u$n$id" && ip -n "$ns" link set "u$n$id" up &&
		ip -n "$NSC" addr add "10.77.$n.2/24" dev "d$n$id" && ip -n "$NSC" link set "d$n$id" up ||
		skip "cannot create the veth pairs of sensor $n"
done
check "five namespaces: collector, replayer, three sensors" \
	test "$(ip -n "$NSC" -4 addr show | grep -c 'inet 10\.77\.')" = 3

# --- the collector: the shipped configuration, its paths moved into $T
mkdir -p "$T/col" "$T/collected"
{
	echo "global(workDirectory=\"$T/col\")"
	sed -e "s|/var/log/mxwatch/collected|$T/collected|" etc/rsyslog-collector-relp.conf
} >"$T/col/rsyslog.conf"
check "collector configuration valid (rsyslogd -N1)" rsyslogd -N1 -f "$T/col/rsyslog.conf" >/dev/null 2>&1
start_collector() {
	ip netns exec "$NSC" rsyslogd -n -f "$T/col/rsyslog.conf" -i "$T/col/pid" >>"$T/col/out" 2>&1 &
	COL_PID=$!
	for _ in $(seq 50); do ip netns exec "$NSC" ss -ltn 2>/dev/null | grep -q ':2514 ' && return 0; sleep 0.1; done
	return 1
}
check "collector rsyslogd listening on RELP port 2514" start_collector

# Policy distribution: the collector's cache (here the demo policy, where a
# deployment runs `policy fetch`) exported to a file the sensors import;
# the offline runs below read the demo policy itself.
"$M" policy import --db "$T/col/collector.db" etc/demo.policy >/dev/null
"$M" policy export --db "$T/col/collector.db" >"$T/col/policies.txt"

# --- the sensors: mxwatch capture into a records file, the shipped
# forwarding configuration following it
for n in 1 2 3; do
	d=$T/s$n
	mkdir -p "$d/spool" "$d/db"
	"$M" policy import --db "$d/db/sensor.db" "$T/col/policies.txt" >/dev/null
	"$M" policy import --db "$d/db/offline.db" etc/demo.policy >/dev/null
	{
		echo "global(workDirectory=\"$d/spool\" localHostname=\"edge-$n\")"
		sed -e "s|/var/log/mxwatch/records.jsonl|$d/records.jsonl|" \
			-e "s|collector.example.net|10.77.$n.2|" \
			-e 's|action.resumeInterval="10"|action.resumeInterval="1"|' \
			etc/rsyslog-sensor-relp.conf
	} >"$d/rsyslog.conf"
done
check "sensor configuration valid (rsyslogd -N1)" rsyslogd -N1 -f "$T/s1/rsyslog.conf" >/dev/null 2>&1

# Alerts must not reach the host's syslog: /dev/log blanked.
NOSYSLOG=(unshare -m sh -c '[ -e /dev/log ] && mount --bind /dev/null /dev/log; exec "$@"' sh)
start_sensor() { # N
	local n=$1 d=$T/s$1
	"${NOSYSLOG[@]}" ip netns exec "mxws$n$id" "$M" capture -i "c$n$id" --json --db "$d/db/sensor.db" \
		--config etc/demo.conf --stats-interval 0 --sensor "edge-$n" \
		--output "$d/records.jsonl" >>"$d/stdout" 2>>"$d/capture.err" &
	CAP_PID[$n]=$!
	for _ in $(seq 100); do
		[ "$(grep -c "running on" "$d/capture.err" 2>/dev/null)" -ge "${2:-1}" ] && break
		sleep 0.1
	done
	ip netns exec "mxws$n$id" rsyslogd -n -f "$d/rsyslog.conf" -i "$d/rsyslog.pid" >>"$d/rsyslog.out" 2>&1 &
	RS_PID[$n]=$!
}
stop_sensor() { # N: mxwatch first (it writes its open sessions), then rsyslogd
	local n=$1
	kill -TERM "${CAP_PID[$n]}" && wait "${CAP_PID[$n]}"
	local rc=$?
	sleep 1 # imfile reads the last lines
	kill -TERM "${RS_PID[$n]}" && wait "${RS_PID[$n]}"
	unset "CAP_PID[$n]" "RS_PID[$n]"
	return $rc
}
for n in 1 2 3; do start_sensor $n; done
check "three sensors capturing" test "$(cat "$T"/s[123]/capture.err | grep -c 'running on')" = 3

# Different captures per sensor, in three rounds: before the outage,
# during it, after it.
declare -A ROUND
ROUND[1.1]="pcaps/smtp-starttls-stripped.pcap pcaps/smtp-plain.pcap"
ROUND[1.2]="pcaps/smtp-starttls-tls12.pcap pcaps/smtp-auth-login.pcap"
ROUND[1.3]="pcaps/smtp-pipelining.pcap"
ROUND[2.1]="pcaps/smtp-starttls-refused-454.pcap pcaps/smtp-injection.pcap"
ROUND[2.2]="pcaps/smtp-helo.pcap pcaps/smtp-bdat.pcap"
ROUND[2.3]="pcaps/smtp-starttls-expired-cert.pcap pcaps/smtp-auth-plaintext.pcap"
ROUND[3.1]="pcaps/smtp-mta-relay-tls12.pcap pcaps/smtp-opensmtpd-fallback.pcap"
ROUND[3.2]="pcaps/smtp-opensmtpd-to-postfix.pcap pcaps/smtp-exim-early-pipe.pcap"
ROUND[3.3]="pcaps/smtp-starttls-wrongname-cert.pcap pcaps/smtp-tls-failed-fallback.pcap"
replay() { # ROUND
	local n f
	for n in 1 2 3; do
		for f in ${ROUND[$n.$1]}; do
			ip netns exec "$NSR" tcpreplay -q -t -i "r$n$id" "$f" >/dev/null 2>&1 || return 1
		done
	done
}
check "round 1 replayed" replay 1
sleep 2

# --- the outage: the collector goes away for ten seconds; traffic goes on,
# and sensor 2 is restarted (mxwatch and rsyslogd) while it is away.
kill -TERM "$COL_PID" && wait "$COL_PID"
COL_PID=
t0=$(date +%s)
check "round 2 replayed with the collector down" replay 2
sleep 1
check "sensor 2 stopped cleanly during the outage" stop_sensor 2
start_sensor 2 2
check "sensor 2 started again" test "$(grep -c 'running on' "$T/s2/capture.err")" = 2
sleep $((10 - ($(date +%s) - t0)))
check "collector back after $(($(date +%s) - t0)) s" start_collector
check "round 3 replayed" replay 3
sleep 1

# The sensors end (each writes its open sessions); their rsyslogd goes on
# until every line reached the collector.
for n in 1 2 3; do
	kill -TERM "${CAP_PID[$n]}"
	wait "${CAP_PID[$n]}"
	rc=$?
	unset "CAP_PID[$n]"
	check "sensor $n ended cleanly (exit $rc)" test $rc = 0
done
delivered() { # every distinct record line of the sensors is at the collector
	cat "$T"/s[123]/records.jsonl | sort -u >"$T/sent.sorted"
	cat "$T"/collected/*.jsonl 2>/dev/null | sed 's/^ *//' | grep -v '^$' | sort -u >"$T/got.sorted"
	cmp -s "$T/sent.sorted" "$T/got.sorted"
}
for _ in $(seq 60); do delivered && break; sleep 1; done
sent=$(wc -l <"$T/sent.sorted")
check "every record reached the collector ($(wc -l <"$T/got.sorted") of $sent distinct lines)" delivered
check "records were written during the outage and after it" \
	test "$(grep -c '"type":"session"' "$T/sent.sorted")" -ge 20
check "one file per sensor at the collector ($(ls "$T/collected" | tr '\n' ' '))" \
	test "$(ls "$T/collected")" = "$(printf 'edge-1.jsonl\nedge-2.jsonl\nedge-3.jsonl')"
dups=$(($(cat "$T"/collected/*.jsonl | grep -vc '^$') - sent))
echo "   lines delivered more than once by the transport: $dups"
for n in 1 2 3; do kill -TERM "${RS_PID[$n]}"; wait "${RS_PID[$n]}"; unset "RS_PID[$n]"; done
kill -TERM "$COL_PID" && wait "$COL_PID"
COL_PID=

# --- the collector's view
"$M" ingest --db "$T/col/collector.db" "$T"/collected/*.jsonl >"$T/ingest.out" 2>&1
check "ingest of the collected files: exit 0" test $? = 0
cat "$T/ingest.out" | sed 's/^/   /'
"$M" ingest --db "$T/col/collector.db" "$T"/collected/*.jsonl >"$T/ingest2.out" 2>&1
check "ingesting them again stores nothing" \
	test "$(grep -c ' 0 sessions stored, 0 seen by another sensor too, 0 findings stored' "$T/ingest2.out")" = 4

# --- what the sensors produce offline: each sensor's captures in its order
for n in 1 2 3; do
	"$M" analyze --json --db "$T/s$n/db/offline.db" --config etc/demo.conf --sensor "edge-$n" \
		${ROUND[$n.1]} ${ROUND[$n.2]} ${ROUND[$n.3]} >"$T/s$n/offline.jsonl" 2>/dev/null
done
"$M" policy import --db "$T/offline.db" etc/demo.policy >/dev/null
"$M" ingest --db "$T/offline.db" "$T"/s[123]/offline.jsonl >/dev/null 2>&1
# Live and offline sessions differ in time (and so in id): compared are
# per sensor the sessions (client port, server, STARTTLS, TLS version,
# verdict) and findings (id, domain, server), and the report's counts.
facts() { # DB: per sensor, from the stored records
	sqlite3 "$1" "SELECT g.sensor, 'session', json_extract(s.record, '$.client.port'),
			json_extract(s.record, '$.server.ip'), json_extract(s.record, '$.smtp.starttls.offered'),
			json_extract(s.record, '$.tls.version'), s.verdict
		FROM sightings g JOIN sessions s ON s.id = g.session_id
		UNION ALL SELECT sensor, 'finding', rule, domain, receiving_ip, severity, '' FROM findings
		ORDER BY 1, 2, 3, 4, 5, 6, 7"
}
facts "$T/col/collector.db" >"$T/facts.collector"
facts "$T/offline.db" >"$T/facts.offline"
check "collector sessions and findings = offline, per sensor ($(grep -c '|session|' "$T/facts.offline") sessions, $(grep -c '|finding|' "$T/facts.offline") findings)" \
	eval "[ -s '$T/facts.offline' ] && cmp -s '$T/facts.collector' '$T/facts.offline'"
for n in 1 2 3; do
	check "edge-$n: sessions at the collector = its record file = offline" test \
		"$(grep -c "^edge-$n|session|" "$T/facts.collector")|$(grep -c '"type":"session"' "$T/s$n/records.jsonl")" = \
		"$(grep -c "^edge-$n|session|" "$T/facts.offline")|$(grep -c '"type":"session"' "$T/s$n/offline.jsonl")"
done
"$M" report --db "$T/col/collector.db" | tail -n +2 >"$T/report.collector"
"$M" report --db "$T/offline.db" | tail -n +2 >"$T/report.offline"
check "report summaries equal (sessions, verdicts, findings, domains, sensors)" \
	cmp -s "$T/report.collector" "$T/report.offline"
sed 's/^/   /' "$T/report.collector" | tail -5
strip() { sed -e 's/"report-id":"[^"]*"//' -e 's/"date-range":{[^}]*}//'; }
"$M" report --json --db "$T/col/collector.db" | strip >"$T/rua.collector"
"$M" report --json --db "$T/offline.db" | strip >"$T/rua.offline"
check "RFC 8460 reports equal but for dates ($(wc -l <"$T/rua.collector") domains)" \
	eval "[ -s '$T/rua.collector' ] && cmp -s '$T/rua.collector' '$T/rua.offline'"
finish
