#!/usr/bin/env bash
# The results store under faults, with real processes and filesystems:
# - a database locked by another process for 3 s: retried, everything stored;
#   for longer than --db-wait: exit 2, said, the file left as it was;
# - a full filesystem (a 3 MiB tmpfs): exit 2, said, what fitted is stored and
#   the file is intact;
# - a read-only database (a read-only bind mount): refused with a message
#   naming the file, and --no-store still analyses from it;
# - SIGKILL while results stream out: the file passes PRAGMA integrity_check,
#   every session printed more than 1.5 s before the kill is stored (commits
#   come about once a second), and a second run completes the counts.
# Needs root for the mounts, made in private mount namespaces.
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=$(pwd)/mxwatch
. tests/lib.sh
if [ "$(id -u)" != 0 ]; then
	echo "skip: needs root (tmpfs and read-only mounts)"
	exit 77
fi
T=$(mktemp -d /tmp/mxwatch-storefaults.XXXXXX)
chmod 755 "$T"
holder=
trap '[ -n "$holder" ] && kill $holder 2>/dev/null; rm -rf "$T"' EXIT
CAPS=$(find pcaps -maxdepth 1 -name '*.pcap' -o -maxdepth 1 -name '*.pcapng' | sort)
# A capture of a few thousand sessions (real captures, time-shifted copies).
BIG=build/faults/big.pcap
BENCH_MB=8 BENCH_OUT=$BIG bash tests/bench/make-bench-pcap.sh 2>/dev/null ||
	{ echo "FAIL cannot make $BIG"; exit 1; }

fresh() { rm -f "$1" "$1-wal" "$1-shm"; $M policy import --db "$1" etc/demo.policy >/dev/null; }
counts() {
	sqlite3 "$1" "select count(*) from sessions; select count(*) from findings;
		select count(*) from session_domains" | tr '\n' ' '
}
integrity() { sqlite3 "$1" "pragma integrity_check"; }
dump() { sqlite3 "$1" .dump | md5sum; }

fresh "$T/ref.db"
$M analyze -q --db "$T/ref.db" --config etc/demo.conf $CAPS >/dev/null 2>&1
ref=$(counts "$T/ref.db")

# --- a lock held for 3 s: waited for, nothing lost
fresh "$T/lock.db"
hold_lock "$T/lock.db" 3
$M analyze -q --db "$T/lock.db" --config etc/demo.conf $CAPS >/dev/null 2>"$T/lock.err"
rc=$?
wait $holder
holder=
check "locked for 3 s: exit 0 ($rc)" test $rc = 0
check "... said it was waiting: $(grep -m1 -o 'error=store-busy[^(]*' "$T/lock.err")" \
	grep -q "error=store-busy" "$T/lock.err"
check "... and when storing resumed: $(grep -m1 -o 'notice=store-recovered[^(]*' "$T/lock.err")" \
	grep -q "notice=store-recovered" "$T/lock.err"
check "... every result stored (sessions findings domains: $(counts "$T/lock.db")= $ref)" \
	test "$(counts "$T/lock.db")" = "$ref"

# --- the analysis never waits on the database: with the lock held, every
# session is printed while the writer still waits
want=$($M analyze --json --db none --config etc/demo.conf $CAPS 2>/dev/null | grep -c '"type":"session"')
hold_lock "$T/lock.db" 4
$M analyze --json --db "$T/lock.db" --config etc/demo.conf $CAPS >"$T/wait.json" 2>/dev/null &
pid=$!
sleep 2
got=$(grep -c '"type":"session"' "$T/wait.json")
alive=no
kill -0 $pid 2>/dev/null && alive=yes
wait $pid
wait $holder
holder=
check "locked: all $want sessions printed while the writer waits ($got printed, still running: $alive)" \
	test "$got" = "$want" -a "$want" -gt 0 -a $alive = yes

# --- a lock held beyond --db-wait: exit 2, said, the file as it was
sum=$(dump "$T/lock.db")
hold_lock "$T/lock.db" 60
t0=$(date +%s)
$M analyze -q --db-wait 2 --db "$T/lock.db" --config etc/demo.conf $CAPS >/dev/null 2>"$T/long.err"
rc=$?
t1=$(date +%s)
kill $holder
wait $holder 2>/dev/null
holder=
check "locked beyond --db-wait 2: exit 2 ($rc) after $((t1 - t0)) s" test $rc = 2 -a $((t1 - t0)) -lt 15
check "... said it gave up: $(grep -m1 -o 'error=store-gave-up[^(]*' "$T/long.err")" \
	grep -q "error=store-gave-up" "$T/long.err"
lost=$(grep -o 'lost=[0-9]*' "$T/long.err" | head -1)
check "... and how many results were not stored ($lost)" test "${lost#lost=}" -gt 0 2>/dev/null
check "... and the file is as it was" test "$(dump "$T/lock.db")" = "$sum"

# --- a full filesystem: what fits is stored, the rest is said
mkdir -p "$T/full"
unshare -m bash -c '
	mount -t tmpfs -o size=3m tmpfs "$1/full" || exit 9
	rm -f "$1/full/f.db"
	"$2" policy import --db "$1/full/f.db" etc/demo.policy >/dev/null || exit 8
	"$2" analyze -q --workers 1 --db "$1/full/f.db" --config etc/demo.conf "$3" \
		>/dev/null 2>"$1/full.err"
	echo $? >"$1/full.rc"
	sqlite3 "$1/full/f.db" "pragma integrity_check" >"$1/full.integrity"
	sqlite3 "$1/full/f.db" "select count(*) from sessions" >"$1/full.sessions"
	sqlite3 "$1/full/f.db" "select count(*) from mta_sts" >"$1/full.policies"
' _ "$T" "$M" "$BIG"
mrc=$?
check "full filesystem: the tmpfs was mounted (exit $mrc)" test $mrc = 0
rc=$(cat "$T/full.rc" 2>/dev/null)
check "full filesystem: exit 2 (${rc:-none})" test "${rc:-}" = 2
check "... said so: $(grep -m1 -o 'error=store-failed[^(]*' "$T/full.err")" \
	grep -q "error=store-failed.*full" "$T/full.err"
stored=$(grep -o ' stored=[0-9]*' "$T/full.err" | head -1)
check "... the file is intact ($(cat "$T/full.integrity" 2>/dev/null))" \
	test "$(cat "$T/full.integrity" 2>/dev/null)" = ok
check "... the policy imported before is still there" test "$(cat "$T/full.policies")" -gt 0
check "... it stored what fitted, and says how much (${stored# }; $(cat "$T/full.sessions") in the file)" \
	test "${stored# stored=}" = "$(cat "$T/full.sessions")" -a "$(cat "$T/full.sessions")" -gt 0

# --- a read-only database: refused, naming it; --no-store reads it
mkdir -p "$T/ro"
fresh "$T/ro/r.db"
unshare -m bash -c '
	mount --bind "$1/ro" "$1/ro" && mount -o remount,ro,bind "$1/ro" || exit 9
	"$2" analyze -q --db "$1/ro/r.db" pcaps/smtp-plain.pcap >/dev/null 2>"$1/ro.err"
	echo $? >"$1/ro.rc"
	"$2" analyze --no-store --db "$1/ro/r.db" --config etc/demo.conf pcaps/smtp-plain.pcap \
		>"$1/ro.out" 2>&1
	echo $? >>"$1/ro.rc"
' _ "$T" "$M"
check "read-only database: analyze exits 2 ($(head -1 "$T/ro.rc"))" test "$(head -1 "$T/ro.rc")" = 2
check "... naming the file and why: $(head -c 110 "$T/ro.err")" \
	grep -q "r.db: the file cannot be written (Read-only file system)" "$T/ro.err"
check "... --no-store analyses from it with its policy (exit $(tail -1 "$T/ro.rc"))" \
	eval 'test "$(tail -1 "$T/ro.rc")" = 0 && grep -q "plaintext-to-policy-domain" "$T/ro.out"'

# --- SIGKILL while results stream out. The reader takes each line slowly,
# so the pipe holds the analysis back and the kill lands mid-run.
fresh "$T/kill.db"
python3 - "$M" "$T/kill.db" "$BIG" >"$T/kill.out" 2>&1 <<'EOF'
import json, subprocess, sys, threading, time
mxw, db, cap = sys.argv[1:4]
p = subprocess.Popen([mxw, "analyze", "--json", "--workers", "1", "--db", db,
                      "--config", "etc/demo.conf", cap],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
seen = []
def read():
    for line in p.stdout:
        t = time.monotonic()
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == "session":
            seen.append((t, rec["id"]))
        time.sleep(0.001)
reader = threading.Thread(target=read)
reader.start()
time.sleep(3)
killed_at = time.monotonic()
ended = p.poll() is not None
p.kill()
p.wait()
reader.join()
with open(db + ".printed", "w") as f:
    for t, i in seen:
        if t <= killed_at - 1.5:
            f.write(i + "\n")
print(f"printed {len(seen)} sessions, {sum(1 for t, _ in seen if t <= killed_at - 1.5)} "
      f"more than 1.5 s before the kill; ended before the kill: {ended}")
EOF
cat "$T/kill.out"
check "SIGKILL: the run was still going when killed" grep -q "ended before the kill: False" "$T/kill.out"
check "... the file passes integrity_check" test "$(integrity "$T/kill.db")" = ok
sqlite3 "$T/kill.db" "select id from sessions" | sort >"$T/kill.stored"
sort -u "$T/kill.db.printed" >"$T/kill.early"
missing=$(comm -23 "$T/kill.early" "$T/kill.stored" | wc -l)
check "... every session printed 1.5 s before the kill is stored ($(wc -l <"$T/kill.early") printed, $missing missing, $(wc -l <"$T/kill.stored") stored)" \
	test "$missing" = 0 -a "$(wc -l <"$T/kill.early")" -gt 0
$M analyze -q --db "$T/kill.db" --config etc/demo.conf "$BIG" >/dev/null 2>&1
rc=$?
fresh "$T/bigref.db"
$M analyze -q --db "$T/bigref.db" --config etc/demo.conf "$BIG" >/dev/null 2>&1
check "... a second run completes it: exit $rc, counts $(counts "$T/kill.db")= $(counts "$T/bigref.db")" \
	test $rc = 0 -a "$(counts "$T/kill.db")" = "$(counts "$T/bigref.db")"

finish
