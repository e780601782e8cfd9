#!/usr/bin/env bash
# run.sh SECONDS - runs every libFuzzer target (build/fuzz/bin, ASan+UBSan)
# for SECONDS each, from seed corpora cut from the bundled captures
# (seeds.py) plus what earlier runs found (build/fuzz/corpus). `make test`
# gives a few seconds each, `make fuzz` FUZZ_SECONDS (default 600). A crash,
# leak, sanitizer report or a 10 s input fails the target, and the input is
# kept in build/fuzz/crashes/TARGET/. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
secs=${1:-5}
B=build/fuzz
TARGETS=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
rm -rf "$B/seeds"
python3 tests/fuzz/seeds.py "$B/seeds" >/dev/null || { echo "FAIL cannot cut seeds"; exit 1; }
for t in $TARGETS; do
	mkdir -p "$B/corpus/$t" "$B/crashes/$t" "$B/seeds/$t"
	log=$B/$t.log
	"$B/bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$B/crashes/$t/" "$B/corpus/$t" "$B/seeds/$t" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	seeds=$(ls "$B/seeds/$t" | wc -l)
	check "$t: exit $rc, ${runs:-0} inputs in ${secs} s from $seeds seeds, ${cov:-no coverage}" \
		test "$rc" = 0 -a "${runs:-0}" -gt 0 -a "$seeds" -gt 0
	[ "$rc" = 0 ] || grep -m5 -E "ERROR|SUMMARY|runtime error" "$log"
done
finish
