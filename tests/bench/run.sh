#!/usr/bin/env bash
# run.sh - `make bench`: times ./mxwatch analyze (-q, table and --json output) against the
# ceiling, a bare libpcap read loop (build/bare-pcap-loop), on build/bench/bench.pcap (made by
# make-bench-pcap.sh), one worker pinned to one CPU, then 1..nproc workers on every core; then
# the memory one open flow costs, on a copy of the capture folded in time. Every time is the
# median of BENCH_RUNS (default 3) runs, the file in the page cache.
# Settings (environment): BENCH_RUNS, BENCH_CPU (default 0), and those of make-bench-pcap.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PCAP=build/bench/bench.pcap
BARE=build/bare-pcap-loop
MXW=./mxwatch
RUNS=${BENCH_RUNS:-3}
CPU=${BENCH_CPU:-0}

die() { echo "bench: error: $*" >&2; exit 1; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive whole number"
[[ -x $BARE && -x $MXW ]] || die "build $BARE and $MXW first (make bench does)"

bash tests/bench/make-bench-pcap.sh

PIN=()
if command -v taskset >/dev/null && taskset -c "$CPU" true 2>/dev/null; then
	PIN=(taskset -c "$CPU")
	pinned="pinned to CPU $CPU"
else
	pinned="not pinned (taskset -c $CPU unavailable)"
fi

TMP=$(mktemp -d build/bench/run.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# run NAME CMD...: runs CMD RUNS times; sets MEDIAN to the median wall-clock time and ALL to all
# of them, and keeps the last run's stdout/stderr in $TMP/NAME.out and .err.
run() {
	local name=$1 t0 t1 t i rc
	shift
	ALL=''
	for ((i = 0; i < RUNS; i++)); do
		t0=$(date +%s.%N)
		rc=0
		"${PIN[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
		t1=$(date +%s.%N)
		if ((rc != 0 && rc != 1)); then # mxwatch: 1 = findings, still a complete run
			cat "$TMP/$name.err" >&2
			die "$* exited with status $rc"
		fi
		t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
		ALL+="${ALL:+ }$t"
	done
	MEDIAN=$(tr ' ' '\n' <<<"$ALL" | sort -g | awk '{ v[NR] = $1 } END {
		print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
}

cat "$PCAP" >/dev/null # warm-up read: both contenders start with the file in the page cache
run bare "$BARE" "$PCAP"
t_bare=$MEDIAN runs_bare=$ALL
# mxwatch reads through a 1 MiB stdio buffer (sensor/capture/capture.c); the same loop doing so
# shows how much of the gap that alone closes.
run barebuf env BARE_BUFFER=1048576 "$BARE" "$PCAP"
t_barebuf=$MEDIAN
# One worker, pinned: the three outputs. --db none: the ratio is of analysis and output, not of
# SQLite (the store has its own writer thread and is measured by the tests' fault suites).
run q "$MXW" analyze -q --db none --workers 1 "$PCAP"
t_q=$MEDIAN runs_q=$ALL
run table "$MXW" analyze --db none --workers 1 "$PCAP"
t_table=$MEDIAN runs_table=$ALL
run json "$MXW" analyze --json --db none --workers 1 "$PCAP"
t_json=$MEDIAN runs_json=$ALL
# The scaling curve: 1..nproc workers, unpinned (every core), -q and --json.
NCPU=$(nproc)
PIN_SAVED=("${PIN[@]}")
PIN=()
curve=()
for ((n = 1; n <= NCPU; n++)); do
	run "q$n" "$MXW" analyze -q --db none --workers "$n" "$PCAP"
	tq=$MEDIAN
	run "j$n" "$MXW" analyze --json --db none --workers "$n" "$PCAP"
	curve+=("$n $tq $MEDIAN")
done
PIN=("${PIN_SAVED[@]}")

read -r _ packets _ bytes < <(grep -m1 '^packets ' "$TMP/bare.out") || die "no counts from $BARE"
flow_line=$(grep -m1 '^flows ' "$TMP/q.err") || die "no 'flows N' counter line from mxwatch"
flows=$(awk '{ print $2 }' <<<"$flow_line")
peak=$(sed -n 's/.*(peak \([0-9]*\) at once.*/\1/p' <<<"$flow_line")
size=$(stat -c %s "$PCAP")
sess=$(sed -n 's/^sessions: smtp \([0-9]*\), implicit tls \([0-9]*\),.*/\1 \2/p' "$TMP/q.err")

awk -v size="$size" -v pk="$packets" -v by="$bytes" -v fl="$flows" -v peak="${peak:-?}" \
	-v tb="$t_bare" -v tbb="$t_barebuf" -v tq="$t_q" -v tt="$t_table" -v tj="$t_json" -v sess="$sess" \
	-v rb="$runs_bare" -v rq="$runs_q" -v rt="$runs_table" -v rj="$runs_json" \
	-v runs="$RUNS" -v pinned="$pinned" -v file="$PCAP" -v curve="$(printf '%s;' "${curve[@]}")" '
function group(n,   s, r) {  # 1234567 -> 1,234,567
	s = sprintf("%.0f", n); r = ""
	while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
	return s r
}
function row(name, t, bare) {
	printf "  %-30s %8.3f %12s %7.2f %10s %7.3f\n", name, t, group(pk / t), by * 8 / t / 1e9,
		bare ? "-" : group(ns / t), tb / t
}
BEGIN {
	split(sess, sv, " "); ns = sv[1] + sv[2]
	printf "\nmxwatch throughput: %s\n", file
	printf "  file %.1f MiB, %s packets, %s captured bytes, %s flows (peak %s at once), %s SMTP sessions\n",
		size / 1048576, group(pk), group(by), group(fl), peak == "?" ? "?" : group(peak), group(ns)
	printf "  median of %d runs, %s, file in page cache, --db none\n\n", runs, pinned
	printf "  %-30s %8s %12s %7s %10s %7s\n", "", "seconds", "packets/s", "Gbit/s", "sessions/s", "ratio"
	row("bare libpcap loop", tb, 1)
	row("bare loop, 1 MiB reads", tbb, 1)
	row("analyze -q, 1 worker", tq)
	row("analyze (table), 1 worker", tt)
	row("analyze --json, 1 worker", tj)
	printf "\n  ratio: the bare loop time over this one (1.000 = as fast as reading the file);\n"
	printf "  against the bare loop with 1 MiB reads: -q %.3f, table %.3f, --json %.3f\n", tbb / tq, tbb / tt, tbb / tj
	printf "  runs (s): bare %s; -q %s; table %s; --json %s\n", rb, rq, rt, rj
	printf "\n  scaling (unpinned, every core; seconds and speed-up over 1 worker):\n"
	printf "  %-8s %10s %8s %10s %8s\n", "workers", "-q", "x", "--json", "x"
	n = split(curve, c, ";")
	for (i = 1; i <= n; i++) {
		if (c[i] == "") continue
		split(c[i], f, " ")
		if (f[1] == 1) { q1 = f[2]; j1 = f[3] }
		printf "  %-8d %10.3f %8.2f %10.3f %8.2f\n", f[1], f[2], q1 / f[2], f[3], j1 / f[3]
	}
}'
echo "  mxwatch counters (-q, 1 worker, last run):"
sed 's/^/    /' "$TMP/q.err"

# Memory per open flow: the same flows folded in time so that thousands are open at once
# (make_concurrent_pcap.py), against the original, where a few hundred are; the difference in
# peak RSS over the difference in peak open flows is what one open flow costs.
CONC=build/bench/concurrent.pcap
CONC_KEY=build/bench/concurrent.key
SLICE_S=${BENCH_SLICE_S:-110}
ckey=$( { cat build/bench/bench.key; sha256sum tests/bench/make_concurrent_pcap.py; echo "$SLICE_S"; } | sha256sum | cut -d' ' -f1)
if [[ ! -s $CONC || ! -f $CONC_KEY || $(cat "$CONC_KEY") != "$ckey" ]]; then
	python3 tests/bench/make_concurrent_pcap.py "$PCAP" "$CONC" "$SLICE_S" || die "cannot build $CONC"
	echo "$ckey" >"$CONC_KEY"
fi
mem_row() { # mem_row FILE WORKERS -> "rss_kib peak_flows"
	local rss rc peakf
	read -r rss rc < <(python3 tests/bench/peak_rss.py "$TMP/mem.err" "$MXW" analyze -q --db none \
		--workers "$2" "$1")
	((rc == 0 || rc == 1)) || { cat "$TMP/mem.err" >&2; die "analyze $1 exited with status $rc"; }
	peakf=$(sed -n 's/^flows .*(peak \([0-9]*\) at once.*/\1/p' "$TMP/mem.err")
	echo "$rss $peakf"
}
echo
echo "  memory (peak RSS, -q): $CONC folds the same flows into ${SLICE_S} s"
for n in 1 "$NCPU"; do
	read -r rss_lo peak_lo < <(mem_row "$PCAP" "$n")
	read -r rss_hi peak_hi < <(mem_row "$CONC" "$n")
	awk -v n="$n" -v a="$rss_lo" -v b="$rss_hi" -v pa="$peak_lo" -v pb="$peak_hi" 'BEGIN {
		printf "    %d worker%s: %d KiB at %d open flows, %d KiB at %d open flows: %.2f KiB (%d bytes) per open flow\n",
			n, (n > 1 ? "s" : " "), a, pa, b, pb, (b - a) / (pb - pa), (b - a) * 1024 / (pb - pa) }'
done

# Where the time goes: the timing build (same code with per-stage tick counters) says what share
# of a run message bodies and post-handshake packets take; the goal is close to nothing.
TIMING=build/mxwatch-timing
if [[ -x $TIMING ]]; then
	"${PIN[@]}" "$TIMING" analyze -q --db none --workers 1 "$PCAP" 2>"$TMP/timing.err" >/dev/null || true
	echo
	echo "  share of the run (timing build, one run):"
	grep '^stage ' "$TMP/timing.err" | sed 's/^stage /    /'
fi
