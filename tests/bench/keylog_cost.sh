#!/usr/bin/env bash
# keylog_cost.sh - `make bench`: what reading TLS 1.3 certificates through a key log costs.
# A TLS 1.3 capture of pcaps/ that has a key log (X.pcap with X.keys) is repeated
# BENCH_TLS13_SESSIONS times (default 5,000; new client ports, same bytes and keys), then
# analysed with and without --tls-keylog, pinned to one CPU, best of BENCH_RUNS (default 3);
# beside them, as many TLS 1.2 sessions (pcaps/smtp-starttls-tls12.pcap, a chain as large, in
# the clear), whose chains cost the same checks without the decryption.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
RUNS=${BENCH_RUNS:-3}
N=${BENCH_TLS13_SESSIONS:-5000}
CPU=${BENCH_CPU:-0}
src=$(ls pcaps/smtp-tls13-*.pcap 2>/dev/null | while read -r p; do [ -f "${p%.pcap}.keys" ] && echo "$p"; done | head -1)
[ -n "$src" ] || { echo "keylog bench: no TLS 1.3 capture with a key log in pcaps/"; exit 0; }
keys=${src%.pcap}.keys
out=build/bench/tls13-x$N.pcap
out12=build/bench/tls12-x$N.pcap
mkdir -p build/bench
repeat() { python3 tests/pcaplib.py repeat "$@"; } # SRC OUT N
repeat "$src" "$out" "$N"
repeat pcaps/smtp-starttls-tls12.pcap "$out12" "$N"
PIN=()
taskset -c "$CPU" true 2>/dev/null && PIN=(taskset -c "$CPU")
best() { # CMD...: best wall-clock seconds of RUNS runs
	local b='' t0 t1 t i
	for ((i = 0; i < RUNS; i++)); do
		t0=$(date +%s.%N)
		"${PIN[@]}" "$@" >/dev/null 2>build/bench/keylog.err || [ $? = 1 ]
		t1=$(date +%s.%N)
		t=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
		if [ -z "$b" ] || awk -v t="$t" -v b="$b" 'BEGIN { exit !(t < b) }'; then b=$t; fi
	done
	echo "$b"
}
tls12=$(best ./mxwatch analyze -q --workers 1 --db none "$out12")
plain=$(best ./mxwatch analyze -q --workers 1 --db none "$out")
keyed=$(best ./mxwatch analyze -q --workers 1 --db none --tls-keylog "$keys" "$out")
opened=$(sed -n 's/^tls 1.3 through the key log: \([0-9]*\) opened.*/\1/p' build/bench/keylog.err)
awk -v n="$N" -v p="$plain" -v k="$keyed" -v t12="$tls12" -v o="${opened:-0}" -v src="$src" 'BEGIN {
	printf "TLS 1.3 with a key log (%s x %d sessions, %d chains read):\n", src, n, o
	printf "  without --tls-keylog %.3f s (%.0f sessions/s)\n", p, n / p
	printf "  with    --tls-keylog %.3f s (%.0f sessions/s): %.1f us more per session\n", k, n / k, (k - p) / n * 1e6
	printf "  TLS 1.2, chain in the clear %.3f s (%.0f sessions/s): the key log adds %.1f us per session over it\n", t12, n / t12, (k - t12) / n * 1e6
}'
