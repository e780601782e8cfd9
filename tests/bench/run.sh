#!/usr/bin/env bash
# run.sh - `make bench`: times ./mxwatch analyze -q against the ceiling, a bare libpcap read loop
# (build/bare-pcap-loop), on build/bench/bench.pcap (made by make-bench-pcap.sh). Both read the
# file from the page cache, pinned to one CPU; the best of BENCH_RUNS (default 3) runs counts.
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

# run NAME CMD...: runs CMD RUNS times; sets BEST to the best wall-clock time and ALL to all of
# them, and keeps the last run's stdout/stderr in $TMP/NAME.out and .err.
run() {
	local name=$1 t0 t1 t i rc
	shift
	BEST='' ALL=''
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
		if [[ -z $BEST ]] || awk -v t="$t" -v b="$BEST" 'BEGIN { exit !(t < b) }'; then
			BEST=$t
		fi
	done
}

cat "$PCAP" >/dev/null # warm-up read: both contenders start with the file in the page cache
run bare "$BARE" "$PCAP"
best_bare=$BEST runs_bare=$ALL
run mxw "$MXW" analyze -q --workers 1 "$PCAP"
best_mxw=$BEST runs_mxw=$ALL
# Every core, unpinned: a reader, the decoding workers and the writer.
NCPU=$(nproc)
PIN_SAVED=("${PIN[@]}")
PIN=()
run mxwn "$MXW" analyze -q --workers "$NCPU" "$PCAP"
best_mxwn=$BEST runs_mxwn=$ALL
PIN=("${PIN_SAVED[@]}")

read -r _ packets _ bytes < <(grep -m1 '^packets ' "$TMP/bare.out") || die "no counts from $BARE"
flow_line=$(grep -m1 '^flows ' "$TMP/mxw.err") || die "no 'flows N' counter line from mxwatch"
flows=$(awk '{ print $2 }' <<<"$flow_line")
peak=$(sed -n 's/.*(peak \([0-9]*\) at once.*/\1/p' <<<"$flow_line")
size=$(stat -c %s "$PCAP")

awk -v size="$size" -v pk="$packets" -v by="$bytes" -v fl="$flows" -v peak="${peak:-?}" \
	-v tb="$best_bare" -v tm="$best_mxw" -v rb="$runs_bare" -v rm="$runs_mxw" \
	-v tn="$best_mxwn" -v rn="$runs_mxwn" -v ncpu="$NCPU" \
	-v runs="$RUNS" -v pinned="$pinned" -v file="$PCAP" '
function group(n,   s, r) {  # 1234567 -> 1,234,567
	s = sprintf("%.0f", n); r = ""
	while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
	return s r
}
BEGIN {
	printf "\nmxwatch throughput: %s\n", file
	printf "  file %.1f MiB, %s packets, %s captured bytes, %s flows (peak %s at once)\n",
		size / 1048576, group(pk), group(by), group(fl), peak == "?" ? "?" : group(peak)
	printf "  best of %d runs, %s, file in page cache\n\n", runs, pinned
	printf "  %-22s %9s %14s %8s %11s %9s\n", "", "seconds", "packets/s", "Gbit/s", "flows/s", "% of ceil"
	printf "  %-22s %9.3f %14s %8.2f %11s %9.1f\n", "bare libpcap loop", tb, group(pk / tb),
		by * 8 / tb / 1e9, "-", 100
	printf "  %-22s %9.3f %14s %8.2f %11s %9.1f\n", "mxwatch, 1 worker", tm, group(pk / tm),
		by * 8 / tm / 1e9, group(fl / tm), 100 * tb / tm
	printf "  %-22s %9.3f %14s %8.2f %11s %9.1f\n", sprintf("mxwatch, %d workers *", ncpu), tn,
		group(pk / tn), by * 8 / tn / 1e9, group(fl / tn), 100 * tb / tn
	printf "\n  * unpinned, every core: reader, %d decoding workers and the writer thread\n", ncpu
	printf "  runs (s): bare %s; 1 worker %s; %d workers %s\n", rb, rm, ncpu, rn
}'
echo "  mxwatch counters (last run):"
sed 's/^/    /' "$TMP/mxw.err"

# Sessions per second, and where the time goes: the timing build (same code
# with per-stage tick counters) says what share of a run message bodies and
# post-handshake packets take; the goal is close to nothing.
sess=$(sed -n 's/^sessions: smtp \([0-9]*\), implicit tls \([0-9]*\),.*/\1 \2/p' "$TMP/mxw.err")
if [[ -n $sess ]]; then
	awk -v s="$sess" -v tm="$best_mxw" 'BEGIN { split(s, a, " ");
		printf "\n  SMTP sessions: %d (+%d implicit TLS), %.0f sessions/s\n", a[1], a[2], (a[1] + a[2]) / tm }'
fi
TIMING=build/mxwatch-timing
if [[ -x $TIMING ]]; then
	"${PIN[@]}" "$TIMING" analyze -q --workers 1 "$PCAP" 2>"$TMP/timing.err" >/dev/null || true
	echo "  share of the run (timing build, one run):"
	grep '^stage ' "$TMP/timing.err" | sed 's/^stage /    /'
fi
