#!/usr/bin/env bash
# `mxwatch capture --tls-keylog` on a veth pair: a TLS 1.3 session is
# replayed while its key log is still empty; the sensor must hold its
# verdict, follow the file as the keys are appended seven seconds later,
# and then judge it with the chain read (DANE verified, the certificate's
# SHA-256 as tshark reads it with the same key log). A second TLS 1.3
# session whose keys never come is judged tls13-no-keys when its wait ends.
# The verdicts equal an offline analyze given the finished key log. Needs
# root. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh

KEYED=pcaps/smtp-tls13-aes128.pcap
KEYS=pcaps/smtp-tls13-aes128.keys
UNKEYED=pcaps/smtp-starttls-tls13.pcap
id=$$
NSA=mxwkcap$id
NSB=mxwkrep$id
VA=mxwka$id
VB=mxwkb$id
T=$(mktemp -d /tmp/mxwatch-livekeys.XXXXXX)
chmod 755 "$T"
PID=
cleanup() {
	[ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

skip() { echo "skip: live key log test: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, a veth pair)"
[ -s "$KEYED" ] && [ -s "$KEYS" ] || { echo "FAIL $KEYED or $KEYS missing"; exit 1; }
ip netns add "$NSA" 2>"$T/netns.err" && ip netns add "$NSB" 2>>"$T/netns.err" ||
	skip "cannot create network namespaces: $(head -1 "$T/netns.err")"
ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB" 2>"$T/netns.err" ||
	skip "cannot create a veth pair: $(head -1 "$T/netns.err")"
ip -n "$NSA" link set "$VA" mtu 65535 up && ip -n "$NSB" link set "$VB" mtu 65535 up
check "namespaces and veth pair created" test $? = 0

# DANE for mx.example.test with the key of the keyed capture's server
# certificate, the key's hash made by openssl from the committed file.
spki=$(openssl x509 -in pcaps/certs/mx-tls13.example.test.pem -noout -pubkey |
	openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
cat >"$T/policy.txt" <<EOF
mx example.test 10 mx.example.test
address mx.example.test 127.0.0.13
address mx.example.test 127.0.0.3
tlsa mx.example.test 25 3 1 1 $spki
EOF
mkdir -p "$T/db"
"$M" policy import --db "$T/db/live.db" "$T/policy.txt" >/dev/null
check "policy imported (TLSA 3 1 1 ${spki:0:16}...)" test $? = 0
cp "$T/db/live.db" "$T/db/offline.db"
: >"$T/mta.keys"
chmod 644 "$T/mta.keys"

ip netns exec "$NSA" "$M" capture -i "$VA" --json --db "$T/db/live.db" --user nobody \
	--stats-interval 0 --workers 2 --tls-keylog "$T/mta.keys" --keylog-wait 12 \
	>"$T/live.json" 2>"$T/live.err" &
PID=$!
for _ in $(seq 100); do grep -q "running on" "$T/live.err" 2>/dev/null && break; sleep 0.1; done
check "sensor started with the (still empty) key log" grep -q "running on" "$T/live.err"

ip netns exec "$NSB" tcpreplay -q -t -i "$VB" "$KEYED" >/dev/null 2>&1
# The session ends (FIN) and lingers 5 s as closed; by 7 s it waits for keys.
sleep 7
check "no verdict while its keys have not come" bash -c "! grep -q '\"type\":\"session\"' '$T/live.json'"
cat "$KEYS" >>"$T/mta.keys"
for _ in $(seq 50); do grep -q '"type":"session"' "$T/live.json" && break; sleep 0.1; done
ip netns exec "$NSB" tcpreplay -q -t -i "$VB" "$UNKEYED" >/dev/null 2>&1
for _ in $(seq 250); do
	[ "$(grep -c '"type":"session"' "$T/live.json")" -ge 2 ] && break
	sleep 0.1
done
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
check "SIGTERM ends the sensor cleanly (exit $rc)" test "$rc" = 0 -o "$rc" = 1

"$M" analyze --json --db "$T/db/offline.db" --no-store --tls-keylog "$KEYS" "$KEYED" "$UNKEYED" \
	>"$T/offline.json" 2>"$T/offline.err"
golden=$(tshark -r "$KEYED" -o "tls.keylog_file:$KEYS" -Y tls.handshake.certificate -T fields 2>/dev/null \
	-e tls.handshake.certificate | cut -d, -f1 | tr -d ':\n' | xxd -r -p | sha256sum | cut -d' ' -f1)
summary() {
	python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["type"] == "session":
        t = r["tls"] or {}
        certs = t.get("certs") or []
        print(r["server"]["ip"], r["verdict"], r["verdict_reason"], t.get("certs_source"),
              certs[0]["sha256"] if certs else "-")
' "$1" | sort
}
live=$(summary "$T/live.json")
offline=$(summary "$T/offline.json")
echo "$live" | sed 's/^/     live: /'
check "keys appended 7 s later: verified through the key log" \
	grep -q "^127.0.0.13 verified None keylog $golden" <<<"$live"
check "... with tshark's certificate SHA-256 (${golden:0:16}...)" test -n "$golden"
check "keys that never come: tls13-no-keys when the wait ended" \
	grep -q "^127.0.0.3 not-checkable tls13-no-keys None -" <<<"$live"
check "the counters say one session waited out its keys" \
	grep -q "1 judged when their wait for keys ended" "$T/live.err"
check "live verdicts equal the offline analysis with the whole key log" \
	test -n "$live" -a "$live" = "$offline"
finish
