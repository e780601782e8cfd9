#!/usr/bin/env bash
# live_rate.sh - part of `make bench`: the highest tcpreplay rate at which `mxwatch capture` loses
# no packet, with one worker and with two (--workers N: N capture handles in one AF_PACKET fanout
# group, one thread each; passed whenever `mxwatch capture --help` lists it, since the default is
# one worker per core; builds without it run one worker and report two as unsupported).
#
# Two network namespaces joined by a veth pair (mtu 65535: the loopback-derived captures carry
# segments up to 64 KiB); mxwatch captures on one end, tcpreplay sends the start of
# build/bench/bench.pcap (tests/bench/make-bench-pcap.sh: realistic mixed SMTP/TLS/DNS and
# non-mail traffic, ~194 bytes a packet on average) from the other. A trial sends
# BENCH_LIVE_TRIAL seconds' worth of packets at one rate (tcpreplay --pps=R --limit=R*seconds,
# packets 1..K of the file, no looping) and then stops mxwatch with SIGTERM. It counts as zero loss
# when every link in the chain adds up:
#   tcpreplay sent K packets, none failed          ("Actual: K packets", "Failed packets: 0")
#   the veth delivered all K to the capture side   (rx_packets of the capture end grew by K)
#   the kernel dropped none for mxwatch            (dropped == 0 and dropped by interface == 0)
#   mxwatch decoded every frame the kernel kept    (its "frames N" == "received" summed over handles)
# The capture runs with mxwatch's default filter, as in production, so "received" is the part of
# the K packets that passes the filter (~90%: the rest is non-mail traffic the kernel discards).
#
# Search, per worker count: first a tcpreplay --topspeed trial (up to 300000*BENCH_LIVE_TRIAL
# packets, the whole 1.5 M-packet file by default). If mxwatch keeps up with it, the
# sender is the bottleneck and that is the answer (a lower bound: mxwatch could take more). If not,
# the rate doubles from BENCH_LIVE_START_PPS until a trial loses packets (or reaches the top speed),
# then bisects to BENCH_LIVE_PRECISION percent, within BENCH_LIVE_SECONDS per worker count.
#
# Settings (environment):
#   BENCH_LIVE_SECONDS    time budget per worker count, default 180
#   BENCH_LIVE_TRIAL      seconds of traffic per trial, default 5
#   BENCH_LIVE_START_PPS  first rate of the doubling search, default 10000
#   BENCH_LIVE_PRECISION  stop bisecting when the bounds are this many percent apart, default 10
#   BENCH_LIVE_BUFFER     mxwatch --buffer (per capture handle), default 8M; empty: mxwatch's own
#                         default (64M, ~250k packets of this traffic: enough to hide a sustained
#                         shortfall for a whole short trial, so the result would overstate)
#   BENCH_LIVE_WORKERS    worker counts to measure, default "1 2"
#   BENCH_LIVE_BIN        the mxwatch binary, default ./mxwatch
# Needs root (namespaces); without it prints a skip line and exits 0.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PCAP=build/bench/bench.pcap
MXW=${BENCH_LIVE_BIN:-./mxwatch}
BUDGET=${BENCH_LIVE_SECONDS:-180}
TRIAL=${BENCH_LIVE_TRIAL:-5}
START=${BENCH_LIVE_START_PPS:-10000}
PREC=${BENCH_LIVE_PRECISION:-10}
BUFFER=${BENCH_LIVE_BUFFER-8M}
WORKERS=${BENCH_LIVE_WORKERS:-1 2}
SETTLE=1        # seconds after tcpreplay ends before SIGTERM: the 100 ms block timeout passes
OVERHEAD=3      # rough seconds per trial on top of the traffic (start, settle, stop)
MIN_PPS=500     # the downward search gives up below this

log() { echo "live-rate: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ $(id -u) != 0 ]]; then
	echo "live-rate: skipped (needs root for network namespaces and a veth pair)"
	exit 0
fi
for v in BUDGET TRIAL START PREC; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number, not '${!v}'"
done
[[ -z $BUFFER || $BUFFER =~ ^[0-9]+[kKmMgG]?$ ]] || die "BENCH_LIVE_BUFFER: a size like 8M, not '$BUFFER'"
for w in $WORKERS; do [[ $w =~ ^[1-9][0-9]*$ ]] || die "BENCH_LIVE_WORKERS: '$w' is not a count"; done
[[ -x $MXW ]] || die "build $MXW first (make bench does)"
for t in ip tcpreplay capinfos; do
	command -v "$t" >/dev/null || die "$t not found (make deps installs it)"
done

bash tests/bench/make-bench-pcap.sh || die "could not make $PCAP"
TOTAL=$(capinfos -T -r -c -M "$PCAP" | cut -f2)
[[ $TOTAL =~ ^[0-9]+$ ]] || die "cannot count the packets of $PCAP"
cat "$PCAP" >/dev/null # into the page cache: tcpreplay reads it during the trials

HELP=$("$MXW" capture --help 2>&1)
HAS_WORKERS=0
grep -q -- '--workers' <<<"$HELP" && HAS_WORKERS=1
FILTER=$(sed -n 's/.*--filter BPF.*(default "\(.*\)").*/\1/p' <<<"$HELP")

id=$$
NSA=mxwlrc$id NSB=mxwlrs$id VA=mxwlra$id VB=mxwlrb$id
TMP=$(mktemp -d build/bench/live.XXXXXX)
PID=
cleanup() {
	[[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NSA" && ip netns add "$NSB" || die "cannot create network namespaces"
for ns in "$NSA" "$NSB"; do # no IPv6 neighbour discovery or MLD chatter on the link
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
		2>/dev/null || true
done
ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB" &&
	ip -n "$NSA" link set "$VA" mtu 65535 up && ip -n "$NSB" link set "$VB" mtu 65535 up ||
	die "cannot create the veth pair"

group() { # 1234567 -> 1,234,567
	awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); r = ""
		while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
		print s r }'
}
counter() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3" 2>/dev/null || echo 0; }
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
cputicks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; } # utime+stime, all threads
now() { date +%s.%N; }

# trial WORKERS RATE: one run; RATE is packets/s, or "top" for tcpreplay --topspeed. Prints one
# line and sets T_OK (1 zero loss, 0 loss, 2 could not run), T_PPS/T_MBPS (the rate tcpreplay
# achieved), T_CPU (mxwatch's CPU time while the traffic ran and settled, % of one CPU), T_EST (sent
# packets per second of that CPU time: mxwatch's own ceiling if CPU time were all it needed; the
# kernel's receive work is charged to the sender here and not counted), T_WHY (what was lost).
TRIALS=0
LAST_S=0 # how long the last trial took, start to stop
trial() {
	local w=$1 rate=$2 limit pace wargs=() bargs=() rx0 rx1 txd0 txd1 rc i t_start=$SECONDS
	T_OK=2 T_PPS=0 T_MBPS=0 T_CPU=0 T_EST=0 T_WHY=
	TRIALS=$((TRIALS + 1))
	if [[ $rate == top ]]; then
		limit=$((300000 * TRIAL)) pace=(--topspeed)
	else
		limit=$((rate * TRIAL)) pace=(--pps="$rate")
	fi
	((limit <= TOTAL)) || limit=$TOTAL
	((HAS_WORKERS)) && wargs=(--workers "$w")
	[[ -n $BUFFER ]] && bargs=(--buffer "$BUFFER")
	rx0=$(counter "$NSA" "$VA" rx_packets)
	txd0=$(counter "$NSB" "$VB" tx_dropped)
	rm -f "$TMP/mxw.err" # no stale "running on" from the previous trial
	ip netns exec "$NSA" "$MXW" capture -i "$VA" -q --db none \
		--stats-interval 0 "${bargs[@]}" "${wargs[@]}" >"$TMP/mxw.out" 2>"$TMP/mxw.err" &
	PID=$!
	for ((i = 0; i < 300; i++)); do # up to 30 s (a sanitizer build starts slowly)
		grep -qs 'running on' "$TMP/mxw.err" && break
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	local threads
	threads=$(sed -n 's/.*running on .* with \([0-9]*\) capture thread.*/\1/p' "$TMP/mxw.err" 2>/dev/null)
	if [[ -n $threads && $threads != "$w" ]]; then # ("running on N interface(s) with T capture thread(s)")
		kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
		T_WHY="asked for $w worker(s), mxwatch runs $threads capture thread(s)"
		echo "    trial $TRIALS: $T_WHY"
		return
	fi
	if ! grep -qs 'running on' "$TMP/mxw.err"; then
		local alive=
		kill -0 "$PID" 2>/dev/null && alive=" (still running after 30 s, killed)"
		kill -KILL "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=
		T_WHY="mxwatch capture did not start$alive: $(grep -sv warning "$TMP/mxw.err" | head -3 | tr '\n' ' ')"
		echo "    trial $TRIALS: $T_WHY"
		return
	fi
	local c0 c1 w0 w1
	c0=$(cputicks "$PID") w0=$(now)
	# --preload-pcap: the sender reads from memory, about 9% faster at top speed here
	ip netns exec "$NSB" tcpreplay --preload-pcap "${pace[@]}" --limit="$limit" -i "$VB" "$PCAP" \
		>"$TMP/rep.out" 2>&1
	rc=$?
	sleep "$SETTLE"
	c1=$(cputicks "$PID") w1=$(now)
	T_CPU=$(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.0f", 100 * c / hz / (b - a) }')
	kill -TERM "$PID"
	wait "$PID"
	local mrc=$?
	PID=
	LAST_S=$((SECONDS - t_start))
	rx1=$(counter "$NSA" "$VA" rx_packets)
	txd1=$(counter "$NSB" "$VB" tx_dropped)

	local sent failed pps mbps retried
	sent=$(sed -n 's/^Actual: \([0-9]*\) packets.*/\1/p' "$TMP/rep.out")
	failed=$(sed -n 's/^[[:space:]]*Failed packets:[[:space:]]*\([0-9]*\).*/\1/p' "$TMP/rep.out")
	retried=$(awk -F: '/Retried packets/ { s += $2 } END { print s + 0 }' "$TMP/rep.out")
	read -r pps mbps < <(awk '/^Rated:/ { gsub(",", ""); for (i = 1; i <= NF; i++) {
		if ($i == "Mbps") m = $(i - 1); if ($i == "pps") p = $(i - 1) } }
		END { printf "%.0f %.2f\n", p, m }' "$TMP/rep.out")
	if ((rc != 0)) || [[ -z $sent ]]; then
		T_WHY="tcpreplay failed (status $rc): $(grep -iv '^warning' "$TMP/rep.out" | head -2 | tr '\n' ' ')"
		echo "    trial $TRIALS: $T_WHY"
		return
	fi
	if ((mrc > 1)); then
		T_WHY="mxwatch capture exited with status $mrc: $(tail -2 "$TMP/mxw.err" | tr '\n' ' ')"
		echo "    trial $TRIALS: $T_WHY"
		return
	fi
	# One "capture IFACE: ..." line per interface (summed over the workers' handles by mxwatch;
	# summed here too should a build print one per handle). "dropped by interface" is the
	# interface's own counter, so a sum over handles counts it once per handle: only its zero
	# matters.
	local handles recv drop ifdrop frames
	read -r handles recv drop ifdrop frames < <(awk '
		/^capture [^ ]+: received / { gsub(",", ""); n++; r += $4; d += $6; if ($10 > i) i = $10 }
		/^frames [0-9]+ / { f += $2 }
		END { printf "%d %d %d %d %d\n", n, r, d, i, f }' "$TMP/mxw.err")
	T_PPS=$pps T_MBPS=$mbps
	T_EST=$(awk -v n="$sent" -v c=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", c ? n * hz / c : 0 }')
	local why=()
	((sent == limit && ${failed:-0} == 0)) || why+=("tcpreplay sent $sent of $limit, ${failed:-?} failed")
	((rx1 - rx0 == sent)) || why+=("veth delivered $((rx1 - rx0)) of $sent (sender-side drops $((txd1 - txd0)))")
	((handles >= 1)) || why+=("no 'capture IFACE: received' line from mxwatch")
	((drop == 0)) || why+=("kernel dropped $(group "$drop")")
	((ifdrop == 0)) || why+=("dropped by interface $(group "$ifdrop")")
	((frames == recv)) || why+=("mxwatch decoded $(group "$frames") of $(group "$recv") frames")
	if ((${#why[@]} == 0)); then
		T_OK=1
	else
		T_OK=0
		T_WHY=$(IFS=';'; echo "${why[*]}" | sed 's/;/; /g')
	fi
	local asked short=
	[[ $rate == top ]] && asked="top speed" || asked="$(group "$rate") pps"
	[[ $rate != top ]] && ((pps * 100 < rate * 97)) && short=" (sender fell short of the rate)"
	printf '    trial %2d: %-13s sent %9s at %9s pps %7s Mbit/s%s; mxwatch %3s%% CPU, received %s, dropped %s, ifdrop %s, decoded %s -> %s\n' \
		"$TRIALS" "$asked" "$(group "$sent")" "$(group "$pps")" "$mbps" \
		"$short$( ((retried > 0)) && echo " ($(group "$retried") send retries)")" "$T_CPU" \
		"$(group "$recv")" "$(group "$drop")" "$(group "$ifdrop")" "$(group "$frames")" \
		"$( ((T_OK == 1)) && echo "zero loss" || echo "LOSS: $T_WHY")"
}

# search WORKERS: sets the R_* results for the table.
search() {
	local w=$1 t0=$SECONDS lo=0 hi r mid best_pps=0 best_mbps=0 stop=
	TRIALS=0 R_NOTE=
	fits() { # is there time for one more trial (as long as the last one, at least TRIAL+OVERHEAD)?
		local est=$((TRIAL + OVERHEAD))
		((LAST_S > est)) && est=$LAST_S
		((SECONDS - t0 + est <= BUDGET)) && return 0
		stop="time budget (BENCH_LIVE_SECONDS=$BUDGET) reached"
		return 1
	}
	echo "  $w worker(s):"
	trial "$w" top
	if ((T_OK == 2)); then
		R_PPS=error R_MBPS=- R_NOTE=$T_WHY
		return 1
	fi
	R_TOP="tcpreplay top speed: $(group "$T_PPS") pps, $T_MBPS Mbit/s; mxwatch ($T_CPU% of one CPU)"
	if ((T_OK == 1)); then
		R_PPS=">= $(group "$T_PPS")" R_MBPS=">= $T_MBPS"
		R_NOTE="SENDER-BOUND: tcpreplay cannot send faster here; mxwatch's limit is higher"
		R_TOP+=" kept up, zero loss"
		((T_EST > 0)) && R_TOP+=";
      mxwatch spent one CPU-second per ~$(group "$T_EST") packets sent: a rough ceiling per CPU
      (its own CPU time only; the kernel's receive path ran on the sender's side and is not counted)"
		return 0
	fi
	R_TOP+=" did not keep up: $T_WHY"
	hi=$T_PPS
	# Doubling up from the start rate, below the sender's top speed.
	r=$START
	while ((r < hi)) && fits; do
		trial "$w" "$r"
		((T_OK == 2)) && { R_PPS=error R_MBPS=- R_NOTE=$T_WHY; return 1; }
		if ((T_OK == 1)); then
			lo=$r best_pps=$T_PPS best_mbps=$T_MBPS
			r=$((r * 2))
		else
			hi=$r
			break
		fi
	done
	# Nothing clean yet (the start rate lost packets): halve from the lowest lossy rate.
	while ((lo == 0 && hi / 2 >= MIN_PPS)) && fits; do
		r=$((hi / 2))
		trial "$w" "$r"
		((T_OK == 2)) && { R_PPS=error R_MBPS=- R_NOTE=$T_WHY; return 1; }
		if ((T_OK == 1)); then lo=$r best_pps=$T_PPS best_mbps=$T_MBPS; else hi=$r; fi
	done
	# Bisect between the best clean rate and the lowest lossy one.
	while ((lo > 0 && hi * 100 > lo * (100 + PREC))) && fits; do
		mid=$(((lo + hi) / 2))
		trial "$w" "$mid"
		((T_OK == 2)) && { R_PPS=error R_MBPS=- R_NOTE=$T_WHY; return 1; }
		if ((T_OK == 1)); then lo=$mid best_pps=$T_PPS best_mbps=$T_MBPS; else hi=$mid; fi
	done
	if ((lo == 0)); then
		R_PPS="< $(group "$hi")" R_MBPS=-
	else
		R_PPS=$(group "$best_pps") R_MBPS=$best_mbps
	fi
	if ((lo == 0)); then
		R_NOTE="loses packets at $(group "$hi") pps, no zero-loss trial${stop:+; $stop}"
	else
		R_NOTE="loses packets at $(group "$hi") pps (bounds $(awk -v l="$lo" -v h="$hi" \
			'BEGIN { printf "%.0f", 100 * (h - l) / l }')% apart)${stop:+; $stop}"
	fi
	return 0
}

echo
echo "mxwatch capture: highest zero-loss replay rate (veth between two namespaces)"
echo "  traffic: $PCAP, first packets in file order ($(group "$TOTAL") in all, ~194 B each on average)"
echo "  trial: ${TRIAL} s of traffic at the rate (tcpreplay --pps, --limit=rate*${TRIAL}, at most the whole file),"
echo "         capture filter: ${FILTER:-mxwatch default}; --buffer ${BUFFER:-mxwatch default} per handle;"
echo "         search: top speed, then x2 from $(group "$START") pps, then bisect to ${PREC}%; budget ${BUDGET} s per worker count"
echo "  machine: $(nproc) CPUs shared by tcpreplay, the veth receive path and mxwatch"
echo

rows=()
tops=()
status=0
for w in $WORKERS; do
	if ((w > 1 && !HAS_WORKERS)); then
		rows+=("$w|not supported by this build|-|0|'mxwatch capture --help' has no --workers")
		echo "  $w worker(s): not supported by this build ('mxwatch capture --help' has no --workers)"
		continue
	fi
	t0=$SECONDS
	R_TOP=
	search "$w" || status=1
	rows+=("$w|$R_PPS|$R_MBPS|$TRIALS|$R_NOTE; $((SECONDS - t0)) s")
	[[ -n $R_TOP ]] && tops+=("$w worker(s): $R_TOP")
done

echo
printf '  %-8s %-28s %-10s %-7s %s\n' workers "zero-loss rate (packets/s)" Mbit/s trials note
for row in "${rows[@]}"; do
	IFS='|' read -r w pps mbps n note <<<"$row"
	printf '  %-8s %-28s %-10s %-7s %s\n' "$w" "$pps" "$mbps" "$n" "$note"
done
for t in "${tops[@]+"${tops[@]}"}"; do echo "  $t"; done
exit $status
