#!/usr/bin/env bash
# run.sh SECONDS [--keep] - runs every libFuzzer target (build/fuzz/bin,
# ASan+UBSan) for SECONDS each, from the kept corpus (tests/fuzz/corpus/
# TARGET, in the repository), seeds cut from the bundled captures (seeds.py)
# and what earlier runs here found (build/fuzz/corpus). `make test` gives a
# few seconds each; `make fuzz` FUZZ_SECONDS (default 600) and --keep, which
# then merges every input that adds coverage into tests/fuzz/corpus/TARGET
# (libFuzzer -merge=1: a minimal set) to be committed. A crash, leak,
# sanitizer report or a 10 s input fails the target, and the input is kept
# in build/fuzz/crashes/TARGET/. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
secs=${1:-5}
keep=${2:-}
B=build/fuzz
TARGETS=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
rm -rf "$B/seeds"
python3 tests/fuzz/seeds.py "$B/seeds" >/dev/null || { echo "FAIL cannot cut seeds"; exit 1; }
for t in $TARGETS; do
	kept=tests/fuzz/corpus/$t
	mkdir -p "$B/corpus/$t" "$B/crashes/$t" "$B/seeds/$t" "$kept"
	log=$B/$t.log
	"$B/bin/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$B/crashes/$t/" "$B/corpus/$t" "$kept" "$B/seeds/$t" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	seeds=$(ls "$B/seeds/$t" | wc -l)
	check "$t: exit $rc, ${runs:-0} inputs in ${secs} s from $seeds seeds, ${cov:-no coverage}" \
		test "$rc" = 0 -a "${runs:-0}" -gt 0 -a "$seeds" -gt 0
	[ "$rc" = 0 ] || grep -m5 -E "ERROR|SUMMARY|runtime error" "$log"
	if [ "$keep" = --keep ] && [ "$rc" = 0 ]; then
		before=$(ls "$kept" | wc -l)
		"$B/bin/$t" -merge=1 -timeout=10 -rss_limit_mb=2048 "$kept" "$B/corpus/$t" \
			"$B/seeds/$t" >"$B/$t.merge.log" 2>&1
		echo "     $kept: $before -> $(ls "$kept" | wc -l) inputs"
	fi
done
finish
