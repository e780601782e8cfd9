#!/usr/bin/env bash
# `mxwatch prune` on real databases: the bundled captures analysed into a
# fresh file, their sessions and server history then dated 100, 45 and 5 days
# back with sqlite3 (the captures' own dates drift with the calendar), and:
# - what prune says it deleted is what sqlite3 counted for the cut, and the
#   file afterwards equals a copy pruned by hand with plain SQL (every table,
#   row for row): findings and domains of pruned sessions gone, the rest,
#   policies, fetch log, observed DNS and the discovery queue as they were;
# - reports count only what is left; --dry-run changes nothing; a second run
#   finds nothing more; --vacuum leaves no free page;
# - bad arguments, a missing file, a file that is not an mxwatch database:
#   exit 2 with a message, nothing created or changed;
# - a lock held by another process is waited for, and past --db-wait: exit 2,
#   nothing deleted.
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh
T=$(mktemp -d /tmp/mxwatch-prune.XXXXXX)
holder=
trap '[ -n "$holder" ] && kill $holder 2>/dev/null; rm -rf "$T"' EXIT
CAPS=$(find pcaps -maxdepth 1 -name '*.pcap' -o -maxdepth 1 -name '*.pcapng' | sort)
DAY=86400
now=$(date +%s)

dump() { sqlite3 "$1" .dump | md5sum; }
count() { sqlite3 "$1" "$2"; }
# "[would ]delete[d]: N sessions, N findings, N session domains, N server
# history" as "N N N N"
deleted() {
	sed -n 's/^\(would delete\|deleted\): \([0-9]*\) sessions, \([0-9]*\) findings, \([0-9]*\) session domains, \([0-9]*\) server history$/\2 \3 \4 \5/p' "$1"
}
# What sqlite3 counts as older than CUT (seconds): sessions, their findings,
# their domains, server history.
older() {
	sqlite3 "$1" "select count(*) from sessions where ts_start < $2;
		select count(*) from findings where session_id in (select id from sessions where ts_start < $2);
		select count(*) from session_domains where session_id in (select id from sessions where ts_start < $2);
		select count(*) from server_history where last_seen < $2" | tr '\n' ' ' | sed 's/ $//'
}
# The same deletions by hand, as the oracle for the whole file.
prune_by_hand() {
	sqlite3 "$1" "begin;
		delete from findings where session_id in (select id from sessions where ts_start < $2);
		delete from findings where ts < $2 and session_id not in (select id from sessions);
		delete from session_domains where session_id in (select id from sessions where ts_start < $2);
		delete from sightings where session_id in (select id from sessions where ts_start < $2);
		delete from sessions where ts_start < $2;
		delete from server_history where last_seen < $2;
		commit"
}
copy() { sqlite3 "$1" ".backup '$2'"; }

# --- a database with three ages of results
DB=$T/a.db
$M policy import --db "$DB" etc/demo.policy >/dev/null
$M analyze -q --db "$DB" --config etc/demo.conf $CAPS >/dev/null 2>&1
# passive DNS kept from a run of its own (in the long run its answers expire)
$M analyze -q --db "$DB" pcaps/nonsmtp-mixed.pcap >/dev/null 2>&1
# sessions by rowid: a third 100 days old, a third 45, a third 5; findings
# dated with their session; history alternately 100 and 1 day(s) old; a fetch
# log line and a discovery entry as old as the oldest sessions (they stay).
sqlite3 "$DB" "update sessions set ts_start = $now - (case rowid % 3 when 0 then 100 when 1 then 45
		else 5 end) * $DAY + rowid, ts_end = ts_start;
	update findings set ts = (select s.ts_start from sessions s where s.id = session_id);
	update server_history set last_seen = $now - (case rowid % 2 when 0 then 100 else 1 end) * $DAY,
		first_seen = $now - 200 * $DAY;
	insert into fetch_log(ts, domain, what, result, detail)
		values ($now - 120 * $DAY, 'example.test', 'mta-sts', 'ok', 'old fetch');
	insert into discovery(domain, first_seen, last_seen) values ('old.test', $now - 120 * $DAY,
		$now - 120 * $DAY)"
total=$(count "$DB" "select count(*) from sessions")
findings=$(count "$DB" "select count(*) from findings")
observed=$(count "$DB" "select count(*) from observed_dns")
check "something to prune: $total sessions, $findings findings, $observed observed DNS rows" \
	eval "[ $total -ge 9 ] && [ $findings -gt 0 ] && [ $observed -gt 0 ]"
$M policy export --db "$DB" >"$T/policy.before"
$M report --db "$DB" >"$T/summary.before"
$M report --db "$DB" --json >"$T/json.before"
keep() { # checksum of the rows newer than CUT
	sqlite3 "$DB" "select id, ts_start, record, verdict from sessions where ts_start >= $1 order by id;
		select * from findings where session_id in (select id from sessions where ts_start >= $1) order by id;
		select * from session_domains where session_id in (select id from sessions where ts_start >= $1) order by 1, 2;
		select * from server_history where last_seen >= $1 order by 1, 2;
		select * from mx; select * from mx_address; select * from tlsa; select * from mta_sts;
		select * from fetch_log; select * from observed_dns order by 1, 2, 3; select * from discovery" | md5sum
}

# --- --dry-run counts and changes nothing
cut=$((now - 60 * DAY))
want=$(older "$DB" $cut)
sum=$(dump "$DB")
$M prune --db "$DB" --older-than 60 --dry-run >"$T/dry.out" 2>&1
rc=$?
check "--dry-run: exit 0 ($rc), would delete $(deleted "$T/dry.out") = $want" \
	eval "[ $rc = 0 ] && grep -q '^would delete: ' '$T/dry.out' && [ \"\$(deleted '$T/dry.out')\" = '$want' ]"
check "--dry-run: the file is unchanged" test "$(dump "$DB")" = "$sum"

# --- prune at 60 days: the 100-day third and the old history
copy "$DB" "$T/ref.db"
prune_by_hand "$T/ref.db" $cut
kept_before=$(keep $cut)
$M prune --db "$DB" --older-than 60 >"$T/p60.out" 2>&1
rc=$?
got=$(deleted "$T/p60.out")
check "prune --older-than 60: exit 0 ($rc)" test $rc = 0
check "... deleted (sessions findings domains history) $got = sqlite3's count $want" test "$got" = "$want"
check "... something of each kind was old enough ($want)" \
	eval "set -- $want; [ \$1 -gt 0 ] && [ \$2 -gt 0 ] && [ \$3 -gt 0 ] && [ \$4 -gt 0 ]"
left=$(count "$DB" "select count(*) from sessions")
check "... kept line says what is left ($left sessions)" \
	grep -q "^kept: $left sessions, $(count "$DB" "select count(*) from findings") findings, $(count "$DB" "select count(*) from server_history") server history;" "$T/p60.out"
check "... no session older than the cut is left" \
	test "$(count "$DB" "select count(*) from sessions where ts_start < $cut")" = 0
check "... no finding or domain of a pruned session is left" \
	test "$(count "$DB" "select (select count(*) from findings where session_id not in (select id from sessions))
		+ (select count(*) from session_domains where session_id not in (select id from sessions))")" = 0
check "... everything newer, policies, fetch log, observed DNS and discovery as they were" \
	test "$(keep $cut)" = "$kept_before"
check "... the whole file equals a copy pruned by hand with SQL" \
	test "$(sqlite3 "$DB" .dump)" = "$(sqlite3 "$T/ref.db" .dump)"
$M policy export --db "$DB" >"$T/policy.after"
check "... policy export unchanged ($(wc -l <"$T/policy.after") lines)" \
	eval "[ -s '$T/policy.after' ] && cmp -s '$T/policy.before' '$T/policy.after'"
check "... observed DNS rows all there ($observed)" \
	test "$(count "$DB" "select count(*) from observed_dns")" = "$observed"
check "... the old fetch log line and discovery entry stay" \
	test "$(count "$DB" "select count(*) from fetch_log where detail = 'old fetch'")$(count "$DB" "select count(*) from discovery where domain = 'old.test'")" = 11

# --- reports count what is left
$M report --db "$DB" >"$T/summary.after"
check "report summary before: every session ($total)" grep -qE "^ *sessions +$total\$" "$T/summary.before"
check "report summary after: what is left ($left)" grep -qE "^ *sessions +$left\$" "$T/summary.after"
$M report --db "$DB" --json >"$T/json.after"
$M report --db "$T/ref.db" --json >"$T/json.ref"
check "report --json after prune equals the report of the copy pruned by hand" \
	eval "[ -s '$T/json.after' ] && cmp -s '$T/json.after' '$T/json.ref'"
check "report --json counts dropped for some domain" python3 -c "
import json, sys
def totals(path):
    out = {}
    for line in open(path):
        r = json.loads(line)
        for p in r['policies']:
            s = p['summary']
            out[p['policy']['policy-domain']] = s['total-successful-session-count'] + s['total-failure-session-count']
    return out
b, a = totals('$T/json.before'), totals('$T/json.after')
assert all(a.get(d, 0) <= n for d, n in b.items()), (b, a)
assert any(a.get(d, 0) < n for d, n in b.items()), (b, a)
print('  per domain before', b, 'after', a)
"

# --- a second cut at 30 days takes the 45-day third; again, nothing more
cut=$((now - 30 * DAY))
want=$(older "$DB" $cut)
$M prune --db "$DB" --older-than 30 >"$T/p30.out" 2>&1
check "prune --older-than 30: deleted $(deleted "$T/p30.out") = $want" \
	eval "[ \"\$(deleted '$T/p30.out')\" = '$want' ] && [ \$(echo $want | cut -d' ' -f1) -gt 0 ]"
$M prune --db "$DB" --older-than 30 >"$T/again.out" 2>&1
check "the same prune again deletes nothing" test "$(deleted "$T/again.out")" = "0 0 0 0"
check "a third of the sessions is left (5 days old)" \
	test "$(count "$DB" "select count(*) from sessions")" = "$(count "$DB" "select count(*) from sessions where ts_start > $now - 6 * $DAY")"

# --- --vacuum: no free page left, the file no larger
sqlite3 "$DB" "pragma wal_checkpoint(truncate)" >/dev/null
free_before=$(count "$DB" "pragma freelist_count")
size_before=$(stat -c %s "$DB")
$M prune --db "$DB" --older-than 1 --vacuum >"$T/vac.out" 2>&1
rc=$?
sqlite3 "$DB" "pragma wal_checkpoint(truncate)" >/dev/null
check "--vacuum: exit 0 ($rc), free pages $free_before -> $(count "$DB" "pragma freelist_count"), size $size_before -> $(stat -c %s "$DB")" \
	eval "[ $rc = 0 ] && [ $free_before -gt 0 ] && [ \$(sqlite3 '$DB' 'pragma freelist_count') = 0 ] &&
		[ \$(stat -c %s '$DB') -lt $size_before ] && grep -q 'after VACUUM: .* 0 of them free' '$T/vac.out'"
check "... and the file is sound" test "$(sqlite3 "$DB" "pragma integrity_check")" = ok
check "... the policies still there" eval "$M policy export --db '$DB' | cmp -s - '$T/policy.before'"

# --- bad arguments: exit 2 and a message naming the problem, nothing changed
sum=$(dump "$DB")
bad() { # NAME EXPECTED-MESSAGE ARGS...
	local name=$1 msg=$2
	shift 2
	$M prune "$@" >"$T/bad.out" 2>"$T/bad.err"
	local rc=$?
	check "$name: exit 2 ($rc), says '$(head -c 100 "$T/bad.err")'" \
		eval "[ $rc = 2 ] && grep -q -- \"$msg\" '$T/bad.err' && [ ! -s '$T/bad.out' ]"
}
bad "no --older-than" "--older-than DAYS is required" --db "$DB"
for v in 0 -3 +3 1.5 abc "" 7d " 7" 0x10 99999999999999999999999; do
	bad "--older-than '$v'" "--older-than: '$v' is not a positive whole number of days" \
		--db "$DB" --older-than "$v"
done
bad "--older-than without a value" "unknown or incomplete option" --db "$DB" --older-than
bad "an unknown option" "unknown or incomplete option '--days'" --db "$DB" --days 3
bad "a stray argument" "unexpected argument 'now'" --db "$DB" --older-than 3 now
bad "--db-wait abc" "--db-wait" --db "$DB" --older-than 3 --db-wait abc
check "... the database untouched by all of them" test "$(dump "$DB")" = "$sum"

# --- a missing database: named, nothing created (neither file nor folder)
bad "a missing database" "$T/nodir/typo.db: No such file or directory" --db "$T/nodir/typo.db" --older-than 3
check "... nothing created" test ! -e "$T/nodir"
MXWATCH_DB="$T/env.db" $M prune --older-than 3 >/dev/null 2>"$T/env.err"
check "the default database (\$MXWATCH_DB) missing: exit 2, named, not created" \
	eval "[ $? = 2 ] && grep -q '$T/env.db' '$T/env.err' && [ ! -e '$T/env.db' ]"
# --- a SQLite file that is not ours is left alone
sqlite3 "$T/other.db" "create table t(x); insert into t values (1)"
osum=$(md5sum <"$T/other.db")
bad "another program's SQLite file" "not an mxwatch database" --db "$T/other.db" --older-than 3
check "... left as it was" test "$(md5sum <"$T/other.db")" = "$osum" -a ! -e "$T/other.db-wal"
: >"$T/empty.db"
bad "an empty file" "not an mxwatch database" --db "$T/empty.db" --older-than 3
check "... still empty" test ! -s "$T/empty.db"

# --- another process holding the write lock
copy "$T/ref.db" "$T/lock.db"
sqlite3 "$T/lock.db" "pragma journal_mode=wal" >/dev/null
hold_lock "$T/lock.db" 3
t0=$(date +%s)
$M prune --db "$T/lock.db" --older-than 20 >"$T/lock.out" 2>&1
rc=$?
t1=$(date +%s)
wait $holder
holder=
want=$(older "$T/ref.db" $((now - 20 * DAY)))
check "a lock held for 3 s is waited for: exit 0 ($rc) after $((t1 - t0)) s, deleted $(deleted "$T/lock.out")" \
	eval "[ $rc = 0 ] && [ $((t1 - t0)) -ge 2 ] && [ \"\$(deleted '$T/lock.out')\" = '$want' ]"
copy "$T/ref.db" "$T/lock.db"
sqlite3 "$T/lock.db" "pragma journal_mode=wal" >/dev/null
lsum=$(dump "$T/lock.db")
hold_lock "$T/lock.db" 30
t0=$(date +%s)
$M prune --db "$T/lock.db" --older-than 20 --db-wait 2 >"$T/long.out" 2>"$T/long.err"
rc=$?
t1=$(date +%s)
kill $holder 2>/dev/null
wait $holder 2>/dev/null
holder=
check "a lock held beyond --db-wait 2: exit 2 ($rc) after $((t1 - t0)) s" \
	eval "[ $rc = 2 ] && [ $((t1 - t0)) -ge 2 ] && [ $((t1 - t0)) -le 10 ]"
check "... saying so: $(head -c 150 "$T/long.err")" \
	eval "grep -q 'write lock' '$T/long.err' && grep -q 'nothing deleted' '$T/long.err'"
check "... and nothing was deleted" test "$(dump "$T/lock.db")" = "$lsum"

finish
