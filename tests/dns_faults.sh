#!/usr/bin/env bash
# policy fetch when DNS fails, with real processes in a network namespace of
# its own (only loopback): a resolver address nobody answers on, and a real
# unbound whose only upstream is dead (it answers SERVFAIL). Each run must
# exit 3 naming the domain and the reason, store the failure, and keep
# every cached record and the cached MTA-STS policy as they were (RFC 8461
# 5.1: the last good policy stays in force; RFC 7672: TLSA indeterminate),
# never turn the domain into "no policy". Root only (exit 77 otherwise).
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
NS=mxwdnsfault
. tests/lib.sh
[ "$(id -u)" = 0 ] || { echo "skip: needs root (network namespace)"; exit 77; }
deb=$(ls build/debs/unbound_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { echo "skip: build/debs/unbound_*.deb missing (make deps downloads it)"; exit 77; }
T=$(mktemp -d /tmp/mxwatch-dnsfault.XXXXXX)
cleanup() {
	local p
	p=$(ip netns pids "$NS" 2>/dev/null)
	[ -n "$p" ] && kill $p 2>/dev/null
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
ip netns add "$NS" || { echo "skip: cannot create a network namespace"; exit 77; }
ip -n "$NS" link set lo up
ip -n "$NS" addr add 127.0.3.53/32 dev lo
dpkg -x "$deb" "$T/pkg"
unbound_conf "$T/unbound.conf" "$T" 127.0.3.53
cat >>"$T/unbound.conf" <<EOF
    module-config: "iterator"
forward-zone:
    name: "."
    forward-addr: 127.0.3.99
EOF
ip netns exec "$NS" "$T/pkg/usr/sbin/unbound" -d -c "$T/unbound.conf" >"$T/unbound.out" 2>&1 &
for _ in $(seq 50); do ip netns exec "$NS" ss -Hlun | grep -q 127.0.3.53:53 && break; sleep 0.1; done
check "unbound with a dead upstream is running" eval "ip netns exec $NS ss -Hlun | grep -q 127.0.3.53:53"

snapshot() { # DB: every cached record and the policy, without run-time columns
	sqlite3 "$1" "SELECT domain, host, preference, dnssec FROM mx ORDER BY 1, 2;
		SELECT host, address, dnssec FROM mx_address ORDER BY 1, 2;
		SELECT host, usage, selector, mtype, data, dnssec FROM tlsa ORDER BY 1, 2, 3, 4, 5;
		SELECT domain, txt_id, mode, max_age, mx_patterns, policy_text FROM mta_sts ORDER BY 1"
}
# Both cases run at once: each waits out the resolver's timeouts.
pids=()
for c in unreachable:127.0.3.9 servfail:127.0.3.53; do
	name=${c%%:*}
	"$M" policy import --db "$T/$name.db" etc/demo.policy >/dev/null
	snapshot "$T/$name.db" >"$T/$name.before"
	(ip netns exec "$NS" "$M" policy fetch --db "$T/$name.db" --resolver "${c#*:}" example.test \
		>"$T/$name.out" 2>"$T/$name.err"; echo $? >"$T/$name.rc") &
	pids+=($!)
done
# While the fetches wait on DNS, another writer can take the write lock:
# no lookup runs inside a write transaction.
sleep 1
for name in unreachable servfail; do
	running=no
	[ -e "$T/$name.rc" ] || running=yes
	if sqlite3 "$T/$name.db" ".timeout 0" "BEGIN IMMEDIATE;" "ROLLBACK;" >/dev/null 2>&1; then
		echo "$running free" >"$T/$name.lock"
	else
		echo "$running locked" >"$T/$name.lock"
	fi
done
wait "${pids[@]}"
for name in unreachable servfail; do
	rc=$(cat "$T/$name.rc")
	check "$name: exit 3 ($rc)" test "$rc" = 3
	check "$name: the database was free for other writers during the lookups ($(cat "$T/$name.lock"))" \
		test "$(cat "$T/$name.lock")" = "yes free"
	check "$name: the message names the domain and the reason: $(head -c 150 "$T/$name.err")" \
		grep -qE "example.test: .*(SERVFAIL|timeout|failed)" "$T/$name.err"
	snapshot "$T/$name.db" >"$T/$name.after"
	check "$name: cached MX, addresses, TLSA and MTA-STS policy kept as they were" \
		cmp -s "$T/$name.before" "$T/$name.after"
	check "$name: something was cached to keep" test -s "$T/$name.before"
	check "$name: the domain is not its own MX" \
		test "$(sqlite3 "$T/$name.db" "SELECT count(*) FROM mx WHERE host = 'example.test'")" = 0
	check "$name: the failure is stored with its RFC 8460 type" test "$(sqlite3 "$T/$name.db" \
		"SELECT count(*) FROM fetch_log WHERE domain = 'example.test' AND result = 'sts-policy-fetch-error'")" -ge 1
	check "$name: the policy's last result says so" test "$(sqlite3 "$T/$name.db" \
		"SELECT result FROM mta_sts WHERE domain = 'example.test'")" = sts-policy-fetch-error
done
finish
