# tests/lib.sh - sourced by the shell test suites: check() counts and prints
# one result per check; finish() prints "N passed, N failed" and sets the
# exit status (a suite that checked nothing fails).
pass=0
fail=0
check() { # NAME COMMAND...: the command must succeed
	local name=$1
	shift
	if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
}

# hold_lock DB SECONDS: another process holds the write lock (as a second
# writer would); returns once it is held. Uses $T for its output and sets
# $holder to its process.
hold_lock() {
	python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")' "$1" "$2" >"$T/holder.out" &
	holder=$!
	for _ in $(seq 100); do grep -q held "$T/holder.out" 2>/dev/null && return 0; sleep 0.05; done
	return 1
}

# unbound_conf FILE DIR ADDRESS: the start of an unbound configuration for a
# test resolver run from its unpacked package in DIR (no user, no chroot,
# logs in DIR, answers loopback, serves names under .test for real).
unbound_conf() {
	cat >"$1" <<EOF
server:
    interface: $3
    do-ip6: no
    username: ""
    chroot: ""
    directory: "$2"
    pidfile: "$2/unbound.pid"
    use-syslog: no
    logfile: "$2/unbound.log"
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    local-zone: "test." transparent
EOF
}
