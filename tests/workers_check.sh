#!/usr/bin/env bash
# Results must not depend on the number of decoding threads: every bundled
# and third-party capture, and a generated mixed capture with thousands of
# flows that start, close and age out, is analysed with 1, 2 and 3 workers;
# session and finding records, flow records, stored rows and counters must
# be byte-identical (flow peaks aside: each worker has its own table).
# Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
M=./mxwatch
pass=0
fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi; }
T=$(mktemp -d /tmp/mxwatch-workers.XXXXXX)
trap 'rm -rf "$T"' EXIT

mixed=build/tests/mixed.pcap
BENCH_OUT=$mixed BENCH_MB=${WORKERS_MIXED_MB:-12} bash tests/bench/make-bench-pcap.sh 2>"$T/make.err"
check "mixed capture generated" test -s "$mixed"
corpus=$(find pcaps -name '*.pcap' -o -name '*.pcapng' | sort)
shared=$(ls ../shared/pcaps/*.pcap ../shared/pcaps/*.pcapng 2>/dev/null || true)

"$M" policy import --db "$T/policy.db" etc/demo.policy >/dev/null
run() { # NAME WORKERS ARGS...: JSON records, counters and stored rows
	local name=$1 n=$2
	shift 2
	cp "$T/policy.db" "$T/$name-$n.db"
	"$M" analyze --json --workers "$n" --db "$T/$name-$n.db" --config etc/demo.conf "$@" \
		>"$T/$name-$n.json" 2>"$T/$name-$n.err"
	grep -v 'peak' "$T/$name-$n.err" >"$T/$name-$n.counters"
	sqlite3 "$T/$name-$n.db" "SELECT id, record FROM sessions ORDER BY rowid;
		SELECT session_id, rule, severity, domain, message FROM findings ORDER BY rowid;
		SELECT * FROM server_history ORDER BY 1, 2;" >"$T/$name-$n.rows"
}
same() { cmp -s "$1" "$2"; }
for set in corpus mixed; do
	if [ $set = corpus ]; then files="$corpus $shared"; else files=$mixed; fi
	for n in 1 2 3; do run $set $n $files; done
	records=$(grep -c '"type":"session"' "$T/$set-1.json")
	check "$set: sessions reported with one worker ($records)" test "$records" -gt 0
	for n in 2 3; do
		check "$set: $n workers, same records in the same order" same "$T/$set-1.json" "$T/$set-$n.json"
		check "$set: $n workers, same counters" same "$T/$set-1.counters" "$T/$set-$n.counters"
		check "$set: $n workers, same stored sessions, findings and history" \
			same "$T/$set-1.rows" "$T/$set-$n.rows"
	done
done
# The mixed capture must exercise ageing and many findings, or the
# comparison proves little.
# (closed flows linger, then end on a clock tick; only those still open at
# the end of input count as eof)
flows=$(sed -n 's/^flows \([0-9]*\) .*/\1/p' "$T/mixed-1.err")
eof=$(sed -n 's/^flows .* eof=\([0-9]*\).*/\1/p' "$T/mixed-1.err")
check "mixed: most of ${flows:-0} flows ended on clock ticks (${eof:-?} left at the end)" \
	test "${flows:-0}" -gt 1000 -a "${eof:-999999}" -lt $((${flows:-0} / 10))
findings=$(grep -c '"type":"finding"' "$T/mixed-1.json")
check "mixed: findings raised ($findings)" test "$findings" -gt 100

for n in 1 2 3; do
	"$M" analyze --flows --json --workers "$n" --db none $corpus >"$T/flows-$n.json" 2>"$T/flows-$n.err"
done
check "flow records written ($(wc -l <"$T/flows-1.json"))" test "$(wc -l <"$T/flows-1.json")" -gt 30
check "flow records with 3 workers equal one worker's" same "$T/flows-1.json" "$T/flows-3.json"
check "flow records with 2 workers equal one worker's" same "$T/flows-1.json" "$T/flows-2.json"
# Hand-over stress (tests/ordering_pcaps.py). The dispatch key is random
# per run, so each case runs a dozen times: one worker owning every result
# while the others idle must not stall the end of input, and a DNS answer
# handed over as its flow ends must reach the rules in one worker's order.
python3 tests/ordering_pcaps.py flood "$T/flood.pcap" && python3 tests/ordering_pcaps.py tcpdns "$T/tcpdns.pcap"
check "stress captures generated" test -s "$T/flood.pcap" -a -s "$T/tcpdns.pcap"
"$M" analyze --json --workers 1 --db none "$T/flood.pcap" >"$T/flood-1.json" 2>/dev/null
"$M" analyze --json --workers 1 --db none "$T/tcpdns.pcap" >"$T/tcpdns-1.json" 2>/dev/null
stalls=0 differ=0
for i in $(seq 12); do
	timeout 60 "$M" analyze --json --workers $((2 + i % 2)) --db none "$T/flood.pcap" >"$T/flood-n.json" 2>/dev/null
	rc=$?
	[ $rc -gt 1 ] && stalls=$((stalls + 1))
	"$M" analyze --json --workers 2 --db none "$T/tcpdns.pcap" >"$T/tcpdns-n.json" 2>/dev/null
	cmp -s "$T/tcpdns-1.json" "$T/tcpdns-n.json" || differ=$((differ + 1))
done
check "one busy worker, idle others: 12 runs end on time ($stalls stalled)" test $stalls = 0
check "DNS answer handed over at flow end: 12 runs equal one worker ($differ differ)" test $differ = 0
check "...and that answer came after the older SMTP session (no dns-observed tie)" \
	bash -c "grep -q '\"type\":\"session\"' '$T/tcpdns-1.json' && ! grep -q 'dns-observed' '$T/tcpdns-1.json'"

# The same runs under ThreadSanitizer: no data race between the reader,
# the workers and the writer.
TSAN=build/mxwatch-tsan
if [ -x "$TSAN" ]; then
	for set in corpus mixed; do
		if [ $set = corpus ]; then files="$corpus $shared"; else files=$mixed; fi
		cp "$T/policy.db" "$T/tsan.db"
		# (without address randomisation: TSan cannot start on kernels
		# with many mmap random bits)
		TSAN_OPTIONS="halt_on_error=1 exitcode=66" setarch "$(uname -m)" -R "$TSAN" analyze --json --workers 3 --ndpi all \
			--db "$T/tsan.db" --config etc/demo.conf $files >"$T/tsan.json" 2>"$T/tsan.err"
		rc=$?
		check "$set: no data race with 3 workers under ThreadSanitizer (exit $rc)" \
			bash -c "[ $rc -le 1 ] && ! grep -q ThreadSanitizer '$T/tsan.err'"
	done
else
	check "ThreadSanitizer build present ($TSAN)" false
fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
