#!/usr/bin/env bash
# The database under faults, with real files: readers never create or write
# (a missing file is an error, a read-only file is read), a damaged file is
# refused before anything is appended to it, and analysing the same capture
# twice changes no count. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh
T=$(mktemp -d /tmp/mxwatch-dbfaults.XXXXXX)
chmod 755 "$T"
trap 'rm -rf "$T"' EXIT
CAPS=$(find pcaps -maxdepth 1 -name '*.pcap' -o -maxdepth 1 -name '*.pcapng' | sort)

# --- readers create nothing
for cmd in "report" "report --json" "policy list" "policy export" "policy show example.test"; do
	# shellcheck disable=SC2086
	$M $cmd --db "$T/typo.db" >"$T/out" 2>"$T/err"
	rc=$?
	check "$cmd on a missing database: exit 2 ($rc), the message names it" \
		eval "[ $rc = 2 ] && grep -q '$T/typo.db' '$T/err'"
	check "$cmd on a missing database: nothing created" test ! -e "$T/typo.db"
done
$M report --db "$T/nodir/x.db" >/dev/null 2>&1
check "report creates no folder" test ! -e "$T/nodir"

# --- a read-only database is read
$M policy import --db "$T/ro.db" etc/demo.policy >/dev/null
$M analyze -q --db "$T/ro.db" --config etc/demo.conf $CAPS >/dev/null 2>&1
want=$(sqlite3 "$T/ro.db" "select count(*) from sessions")
chmod 444 "$T/ro.db"
rm -f "$T/ro.db-wal" "$T/ro.db-shm"
chmod 555 "$T"
if [ "$(id -u)" = 0 ]; then runas() { su nobody -s /bin/sh -c "$*"; }; else runas() { sh -c "$*"; }; fi
runas "'$M' report --db '$T/ro.db'" >"$T/ro.out" 2>"$T/ro.err"
rc=$?
check "report on a read-only file in a read-only folder: exit 0 ($rc)" test $rc = 0
check "... and it counts every stored session ($want)" grep -qE "sessions +$want\$" "$T/ro.out"
runas "'$M' policy list --db '$T/ro.db'" >"$T/ro.list" 2>&1
check "policy list on a read-only file" grep -q "example.test" "$T/ro.list"
chmod 755 "$T"

# --- a damaged database is refused, and left alone
$M policy import --db "$T/bad.db" etc/demo.policy >/dev/null
$M analyze -q --db "$T/bad.db" $CAPS >/dev/null 2>&1
sqlite3 "$T/bad.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
size=$(stat -c %s "$T/bad.db")
# overwrite the middle of page 3 onwards: b-tree pages with garbage
python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(4096 * 2 + 100); f.write(b'\xa5' * 6000); f.close()" "$T/bad.db"
sum_before=$(md5sum <"$T/bad.db")
$M analyze -q --db "$T/bad.db" pcaps/smtp-plain.pcap >/dev/null 2>"$T/bad.err"
rc=$?
check "analyze refuses a damaged database: exit 2 ($rc)" test $rc = 2
check "... saying so: $(head -c 120 "$T/bad.err")" grep -q "damaged" "$T/bad.err"
check "... and leaves the file as it was" test "$(md5sum <"$T/bad.db")" = "$sum_before" -a \
	"$(stat -c %s "$T/bad.db")" = "$size"
$M report --db "$T/bad.db" >/dev/null 2>"$T/bad2.err"
check "report refuses it too" grep -q "damaged" "$T/bad2.err"

# --- re-analysis counts nothing twice
$M policy import --db "$T/twice.db" etc/demo.policy >/dev/null
counts() {
	sqlite3 "$T/twice.db" "select count(*) from sessions; select count(*) from findings;
		select count(*) from session_domains; select sum(sessions) from server_history" | tr '\n' ' '
}
$M analyze -q --db "$T/twice.db" --config etc/demo.conf $CAPS >/dev/null 2>&1
c1=$(counts)
r1=$($M report --db "$T/twice.db" --json | md5sum)
$M analyze -q --db "$T/twice.db" --config etc/demo.conf $CAPS >/dev/null 2>&1
c2=$(counts)
r2=$($M report --db "$T/twice.db" --json | md5sum)
check "the same captures twice: same sessions, findings, domains, history ($c1/ $c2)" test "$c1" = "$c2"
check "... and the same RFC 8460 reports" test "$r1" = "$r2"
check "... with something to compare (sessions and findings stored)" \
	eval "[ \$(echo $c1 | cut -d' ' -f1) -gt 0 ] && [ \$(echo $c1 | cut -d' ' -f2) -gt 0 ]"

finish
