#!/usr/bin/env bash
# `mxwatch ingest` against what analyze itself stores: the JSON records one
# analyze run prints, ingested, give the same reports as the database that
# run wrote; ingesting again changes no count; a second sensor's records of
# the same sessions count once (and a sensor whose clock is far off does
# not match); findings read before their sessions land on them; a file of
# hostile records is rejected line by line (the sanitizer build), with
# nothing stored from a bad line and every good line stored.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh
M=./mxwatch
SAN=build/mxwatch-san
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
caps=$(ls pcaps/*.pcap | sort)

new_db() { # PATH: a database with the demo policy, as the collector has
	rm -f "$1" "$1"-wal "$1"-shm
	$M policy import --db "$1" etc/demo.policy >/dev/null
}
counts() { # DB: rows of every table ingest writes
	sqlite3 "$1" "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM findings),
		(SELECT count(*) FROM sightings), (SELECT count(*) FROM session_domains)"
}
reports() { # DB OUT: the text summary (without its first line, the path) and RFC 8460 JSON
	$M report --db "$1" | tail -n +2 >"$2.txt"
	$M report --json --db "$1" | sed 's/"report-id":"[^"]*"//' >"$2.json"
}

# One run both stores and prints: the reference.
new_db "$T/ref.db"
$M analyze --json --db "$T/ref.db" --config etc/demo.conf --sensor edge-1 $caps \
	>"$T/edge-1.jsonl" 2>/dev/null
reports "$T/ref.db" "$T/ref"
nsess=$(grep -c '"type":"session"' "$T/edge-1.jsonl")
nfind=$(grep -c '"type":"finding"' "$T/edge-1.jsonl")
check "analyze printed sessions ($nsess) and findings ($nfind)" test "$nsess" -gt 20 -a "$nfind" -gt 20
check "the reference database holds what was printed" \
	test "$(counts "$T/ref.db" | cut -d'|' -f1-3)" = "$nsess|$nfind|$nsess"

new_db "$T/c.db"
$M ingest --db "$T/c.db" "$T/edge-1.jsonl" >"$T/out1" 2>"$T/err1"
check "ingest exits 0 on good records" test $? = 0
check "ingest says what it stored" grep -q "$nsess sessions stored, 0 seen by another sensor too, $nfind findings stored, 0 already stored, 0 flow records not stored, 0 rejected" "$T/out1"
check "nothing on standard error" test ! -s "$T/err1"
reports "$T/c.db" "$T/c"
check "RFC 8460 reports equal analyze's own store" cmp -s "$T/ref.json" "$T/c.json"
check "summaries equal analyze's own store" cmp -s "$T/ref.txt" "$T/c.txt"
check "the summary names the sensor" grep -Eq "^    edge-1 +$nsess +$nsess +$nfind\$" "$T/c.txt"
check "RFC 8460 reports are not empty" test "$(wc -l <"$T/c.json")" -gt 0
before=$(counts "$T/c.db")

# the same records again, and a file given twice in one run
$M ingest --db "$T/c.db" "$T/edge-1.jsonl" "$T/edge-1.jsonl" >"$T/out2" 2>&1
check "ingesting again exits 0" test $? = 0
check "ingesting again stores nothing" \
	test "$(grep -c "0 sessions stored, 0 seen by another sensor too, 0 findings stored, $((nsess + nfind)) already stored" "$T/out2")" = 2
check "ingesting again changes no count" test "$(counts "$T/c.db")" = "$before"
reports "$T/c.db" "$T/c2"
check "ingesting again changes no report" cmp -s "$T/ref.json" "$T/c2.json"

# A second sensor on the same path: its own record ids, its clock 1 s
# later. A third sensor whose clock is 10 s off is a different story.
python3 - "$T/edge-1.jsonl" "$T" <<'EOF'
import json, sys
from datetime import datetime, timedelta
def shift(t, s):
    d = datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ") + timedelta(seconds=s)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
for name, secs in (("edge-2", 1), ("edge-3", 10)):
    with open(f"{sys.argv[2]}/{name}.jsonl", "w") as out:
        for line in open(sys.argv[1]):
            r = json.loads(line)
            r["sensor"] = name
            key = "id" if r["type"] == "session" else "session"
            r[key] = r[key][::-1]
            for k in ("ts_start", "ts_end", "ts"):
                if k in r:
                    r[k] = shift(r[k], secs)
            out.write(json.dumps(r, separators=(",", ":")) + "\n")
EOF
cp "$T/c.db" "$T/far.db"
$M ingest --db "$T/c.db" "$T/edge-2.jsonl" >"$T/out3" 2>&1
check "a second sensor's sessions are sightings" \
	grep -q "0 sessions stored, $nsess seen by another sensor too, $nfind findings stored" "$T/out3"
reports "$T/c.db" "$T/c3"
check "two sensors on one path: the same RFC 8460 reports" cmp -s "$T/ref.json" "$T/c3.json"
check "two sensors on one path: the same counts in the summary" \
	cmp -s <(sed '/^  sensors/,$d' "$T/ref.txt") <(sed '/^  sensors/,$d' "$T/c3.txt")
check "both sightings are kept and shown" \
	test "$(grep -Ec "^    edge-[12] +$nsess +0 +$nfind\$" "$T/c3.txt")" = 2
check "both sightings are stored" \
	test "$(sqlite3 "$T/c.db" "SELECT count(DISTINCT sensor) || '|' || count(*) FROM sightings")" = "2|$((2 * nsess))"
$M ingest --db "$T/far.db" "$T/edge-3.jsonl" >"$T/out4" 2>&1
check "a sensor 10 s off matches nothing" \
	grep -q "$nsess sessions stored, 0 seen by another sensor too" "$T/out4"
check "--match-window 15 matches it" sh -c "cp '$T/c.db' '$T/far2.db' &&
	$M ingest --db '$T/far2.db' --match-window 15 '$T/edge-3.jsonl' | grep -q ' $nsess seen by another sensor too'"

# Findings before their sessions (a transport that reorders) land on them.
new_db "$T/order.db"
{ grep '"type":"finding"' "$T/edge-1.jsonl"; grep -v '"type":"finding"' "$T/edge-1.jsonl"; } >"$T/reordered.jsonl"
$M ingest --db "$T/order.db" "$T/reordered.jsonl" >/dev/null 2>&1
reports "$T/order.db" "$T/order"
check "findings before their sessions: the same reports" cmp -s "$T/ref.json" "$T/order.json"
python3 - "$T/edge-1.jsonl" "$T/edge-2.jsonl" >"$T/mixed.jsonl" <<'EOF'
import sys
# the second sensor's findings first, then the first sensor, then the
# second sensor's sessions: its findings must move to the stored sessions
a = open(sys.argv[1]).read().splitlines()
b = open(sys.argv[2]).read().splitlines()
print("\n".join([l for l in b if '"type":"finding"' in l] + a +
                [l for l in b if '"type":"finding"' not in l]))
EOF
new_db "$T/mixed.db"
$M ingest --db "$T/mixed.db" "$T/mixed.jsonl" >/dev/null 2>&1
reports "$T/mixed.db" "$T/mixed"
check "a second sensor's findings before its sessions: the same reports" cmp -s "$T/ref.json" "$T/mixed.json"
check "... and its findings are on the stored sessions" test "$(sqlite3 "$T/mixed.db" \
	"SELECT count(*) FROM findings f WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = f.session_id)")" = 0

# Standard input, with the stored report the same.
new_db "$T/stdin.db"
$M ingest --db "$T/stdin.db" - <"$T/edge-1.jsonl" >"$T/out5" 2>&1
check "standard input is read" grep -q "^standard input: $((nsess + nfind)) lines: $nsess sessions stored" "$T/out5"

# Hostile records, through the sanitizer build.
python3 tests/ingest_hostile.py "$T/edge-1.jsonl" "$T/hostile.jsonl" >/dev/null
new_db "$T/h.db"
$SAN ingest --db "$T/h.db" "$T/hostile.jsonl" >"$T/hout" 2>"$T/herr"
rc=$?
nbad=$(wc -l <"$T/hostile.jsonl.expected")
check "hostile records: exit 1 (some rejected)" test "$rc" = 1
check "hostile records: no sanitizer report" sh -c "! grep -q 'Sanitizer\|runtime error' '$T/herr'"
sed -n 's/^mxwatch ingest: [^:]*: line \([0-9]*\): rejected: .*/\1/p' "$T/herr" >"$T/named"
check "hostile records: the first 50 of the $nbad bad lines named, and no other" \
	cmp -s "$T/named" <(head -50 "$T/hostile.jsonl.expected")
check "hostile records: past 50, said they are only counted" \
	grep -q "further rejected lines are only counted" "$T/herr"
check "hostile records: the count of rejected lines" grep -q " $nbad rejected\$" "$T/hout"
check "hostile records: nothing of a bad line stored" test "$(sqlite3 "$T/h.db" "SELECT
	(SELECT count(*) FROM sessions WHERE id LIKE 'badbad%' OR record LIKE '%badbad%') +
	(SELECT count(*) FROM sightings WHERE record_id LIKE 'badbad%' OR session_id LIKE 'badbad%') +
	(SELECT count(*) FROM findings WHERE session_id LIKE 'badbad%') +
	(SELECT count(*) FROM session_domains WHERE session_id LIKE 'badbad%')")" = 0
check "hostile records: every good line stored" \
	test "$(counts "$T/h.db" | cut -d'|' -f1-3)" = "$nsess|$nfind|$nsess"
reports "$T/h.db" "$T/h"
check "hostile records: the good ones give the same reports" cmp -s "$T/ref.json" "$T/h.json"
check "hostile records: no control byte on standard error" \
	test "$(tr -d '\n' <"$T/herr" | LC_ALL=C tr -d '[:print:]' | wc -c)" = 0

# Names are stored as the tables spell them, whatever case a record used.
new_db "$T/case.db"
sed 's/"severity":"high"/"severity":"HIGH"/' "$T/edge-1.jsonl" >"$T/upper.jsonl"
$M ingest --db "$T/case.db" "$T/upper.jsonl" >/dev/null 2>&1
check "a severity in upper case is stored in the table's spelling" \
	test "$(sqlite3 "$T/case.db" "SELECT count(*) FROM findings WHERE severity = 'HIGH'")|$(sqlite3 "$T/case.db" "SELECT count(*) > 0 FROM findings WHERE severity = 'high'")" = "0|1"

# A database analyze wrote, then ingest of the same records (a collector
# that is also a sensor): nothing doubles.
cp "$T/ref.db" "$T/both.db"
$M ingest --db "$T/both.db" "$T/edge-1.jsonl" >"$T/out6" 2>&1
check "records analyze stored itself are already stored" \
	grep -q " 0 sessions stored, 0 seen by another sensor too, 0 findings stored, $((nsess + nfind)) already stored" "$T/out6"
check "... and no count changed" test "$(counts "$T/both.db")" = "$(counts "$T/ref.db")"

# Which sensor's records come first does not decide what is reported: a
# second sensor that saw the sessions but none of their findings (a lossy
# mirror port), ingested first.
grep -v '"type":"finding"' "$T/edge-2.jsonl" >"$T/edge-2-nofind.jsonl"
new_db "$T/o1.db"
new_db "$T/o2.db"
$M ingest --db "$T/o1.db" "$T/edge-1.jsonl" "$T/edge-2-nofind.jsonl" >/dev/null 2>&1
$M ingest --db "$T/o2.db" "$T/edge-2-nofind.jsonl" "$T/edge-1.jsonl" >/dev/null 2>&1
reports "$T/o1.db" "$T/o1"
reports "$T/o2.db" "$T/o2"
# (the second sensor's clock is 1 s later: its sightings stored first move
# the reports' date ranges by that second, nothing else)
undated() { sed 's/"date-range":{[^}]*}//' "$1"; }
same_reports() {
	[ -s "$T/o2.json" ] && cmp -s "$T/ref.json" "$T/o1.json" &&
		cmp -s <(undated "$T/ref.json") <(undated "$T/o2.json")
}
check "either order of two sensors: the same RFC 8460 reports as one sensor" same_reports

# Through a pipe that stays open: what was read is stored before the
# writer closes it (a collector fed by a consumer process).
new_db "$T/pipe.db"
mkfifo "$T/fifo"
$M ingest --db "$T/pipe.db" - <"$T/fifo" >"$T/pipe.out" 2>&1 &
ipid=$!
exec 7>"$T/fifo"
head -5 "$T/edge-1.jsonl" >&7
stored=0
for _ in $(seq 50); do
	stored=$(sqlite3 "$T/pipe.db" "SELECT count(*) FROM sightings" 2>/dev/null || echo 0)
	[ "${stored:-0}" -gt 0 ] && break
	sleep 0.1
done
check "records from an open pipe are committed while it stays open ($stored)" test "${stored:-0}" -gt 0
tail -n +6 "$T/edge-1.jsonl" >&7
exec 7>&-
wait $ipid
check "... and the rest once it closes" grep -q "^standard input: $((nsess + nfind)) lines: $nsess sessions stored" "$T/pipe.out"

# Usage: what is wrong is named.
$M ingest --db "$T/u.db" "$T/no-such-file" >/dev/null 2>"$T/uerr"
check "a missing file: exit 2, named" sh -c "test $? = 2 && grep -q 'no-such-file: cannot open' '$T/uerr'"
$M ingest --db "$T/u.db" --match-window x "$T/edge-1.jsonl" >/dev/null 2>"$T/uerr"
check "a bad --match-window: exit 2, named" sh -c "test $? = 2 && grep -q 'match-window' '$T/uerr'"
$M ingest --db "$T/u.db" >/dev/null 2>"$T/uerr"
check "no file: exit 2" test $? = 2
finish
