#!/usr/bin/env bash
# make-bench-pcap.sh - build build/bench/bench.pcap, a large capture (BENCH_MB MiB, default 300)
# made of many time-shifted copies of the real Ethernet captures in pcaps/, each copy with fresh
# addresses and sequence numbers, so mxwatch sees many thousands of distinct flows that start,
# end and age out as on a real link. Cached: rebuilt only when its inputs or settings change.
#
# Settings (environment): BENCH_OUT (where to write, default build/bench/bench.pcap), BENCH_MB (target size in MiB, default 300), BENCH_GAP_MS (idle time
# between consecutive copies, default 10), BENCH_VARIANTS (port-remapped copies in one unit,
# default 8).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT_DIR=build/bench
OUT=${BENCH_OUT:-$OUT_DIR/bench.pcap}
KEY_FILE=${OUT%.pcap}.key
BENCH_MB=${BENCH_MB:-300}
GAP_MS=${BENCH_GAP_MS:-10}
VARIANTS=${BENCH_VARIANTS:-8}
BASE_US=1700000000000000 # first packet of the result: 2023-11-14 22:13:20 UTC

log() { echo "make-bench-pcap: $*" >&2; }
die() { log "error: $*"; exit 1; }
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1048576 }'; }

for v in BENCH_MB GAP_MS VARIANTS; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
((BENCH_MB >= 1 && VARIANTS >= 1)) || die "BENCH_MB and BENCH_VARIANTS must be at least 1"

# Tools: tcpreplay gives tcprewrite; tshark pulls in wireshark-common (editcap, mergecap, capinfos).
need=()
command -v tcprewrite >/dev/null || need+=(tcpreplay)
command -v python3 >/dev/null || need+=(python3)
for t in editcap mergecap capinfos tshark; do
	command -v "$t" >/dev/null || { need+=(tshark); break; }
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

mapfile -t INPUTS < <(find pcaps -type f \( -name '*.pcap' -o -name '*.pcapng' \) | LC_ALL=C sort)
((${#INPUTS[@]})) || die "no captures found in pcaps/"

# Cache key: the scripts, the settings, the tool version and every input's content.
key=$( {
	sha256sum "${BASH_SOURCE[0]}" tests/bench/trim_eth_padding.py
	echo "mb=$BENCH_MB gap=$GAP_MS variants=$VARIANTS"
	tcprewrite --version 2>&1 | head -1
	sha256sum "${INPUTS[@]}"
} | sha256sum | cut -d' ' -f1)
if [[ -s $OUT && -f $KEY_FILE && $(cat "$KEY_FILE") == "$key" ]]; then
	log "$OUT is up to date ($(mib "$OUT") MiB)"
	exit 0
fi

mkdir -p "$OUT_DIR" "$(dirname "$OUT")"
rm -f "$OUT" "$KEY_FILE"
TMP=$(mktemp -d "$OUT_DIR/tmp.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
start_s=$(date +%s)

# Seconds with a fraction (as capinfos -S prints) -> integer microseconds, and back.
to_us() {
	local s=$1 i f
	i=${s%%.*}
	if [[ $s == *.* ]]; then f=${s#*.}000000; else f=000000; fi
	echo $((i * 1000000 + 10#${f:0:6}))
}
fmt_us() {
	local v=$1 sign=
	((v < 0)) && { sign=-; v=$((-v)); }
	printf '%s%d.%06d' "$sign" $((v / 1000000)) $((v % 1000000))
}
first_us() { to_us "$(capinfos -T -r -a -S "$1" | cut -f2)"; }
last_us() { to_us "$(capinfos -T -r -e -S "$1" | cut -f2)"; }
npackets() { capinfos -T -r -c -M "$1" | cut -f2; }

# 1. The base: every Ethernet capture tcprewrite can edit, as classic pcap without Ethernet
#    padding (tcprewrite 4.4.3 would turn it into payload, see trim_eth_padding.py), laid end to
#    end in time from BASE_US with GAP_MS between them. Other link types (Linux SLL/SLL2, ...)
#    are left out: tcprewrite cannot rewrite their addresses.
GAP_US=$((GAP_MS * 1000))
cursor=$BASE_US
pieces=()
skipped=()
n=0
for f in "${INPUTS[@]}"; do
	encap=$(capinfos -T -r -E "$f" | cut -f2)
	if [[ $encap != ether ]]; then
		skipped+=("$f ($encap)")
		continue
	fi
	n=$((n + 1))
	conv=$TMP/conv$n.pcap
	editcap -F pcap "$f" "$TMP/raw.pcap"
	trimmed=$(python3 tests/bench/trim_eth_padding.py "$TMP/raw.pcap" "$conv")
	((trimmed == 0)) || log "$f: cut the Ethernet padding of $trimmed frames"
	if ! tcprewrite --seed=1 --tcp-sequence=1 -i "$conv" -o "$TMP/probe.pcap" 2>"$TMP/probe.err"; then
		skipped+=("$f (tcprewrite: $(head -1 "$TMP/probe.err"))")
		continue
	fi
	a=$(first_us "$conv")
	e=$(last_us "$conv")
	editcap -F pcap -t "$(fmt_us $((cursor - a)))" "$conv" "$TMP/piece$n.pcap"
	pieces+=("$TMP/piece$n.pcap")
	cursor=$((cursor + e - a + GAP_US))
done
((${#pieces[@]})) || die "no Ethernet capture in pcaps/ that tcprewrite can edit"
for s in "${skipped[@]}"; do log "left out: $s"; done
mergecap -a -F pcap -w "$TMP/base.pcap" "${pieces[@]}"
base_span=$(($(last_us "$TMP/base.pcap") - BASE_US))

# 2. One unit: VARIANTS copies of the base, one after the other. Copy i>0 gets fresh IPs
#    (--seed), shifted TCP sequence numbers (--tcp-sequence) and its client ports (source port
#    of each SYN) moved by i*4099 within 32768..60999 (--portmap; later steps keep the ports).
mapfile -t SERVER_PORTS < <(tshark -r "$TMP/base.pcap" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' \
	-T fields -e tcp.dstport 2>/dev/null | sort -un)
mapfile -t CLIENT_PORTS < <(tshark -r "$TMP/base.pcap" -Y 'tcp.flags.syn==1 && tcp.flags.ack==0' \
	-T fields -e tcp.srcport 2>/dev/null | sort -un)
units=("$TMP/base.pcap")
for ((i = 1; i < VARIANTS; i++)); do
	map=
	for p in "${CLIENT_PORTS[@]}"; do
		((p >= 1024)) || continue
		[[ " ${SERVER_PORTS[*]} " == *" $p "* ]] && continue
		map+="${map:+,}$p:$((32768 + (p + i * 4099) % 28232))"
	done
	editcap -F pcap -t "$(fmt_us $((i * (base_span + GAP_US))))" "$TMP/base.pcap" "$TMP/shift.pcap"
	tcprewrite --seed=$((100 + i)) --tcp-sequence=$((100 + i)) ${map:+--portmap=$map} \
		-i "$TMP/shift.pcap" -o "$TMP/var$i.pcap"
	units+=("$TMP/var$i.pcap")
done
mergecap -a -F pcap -w "$TMP/unit.pcap" "${units[@]}"
rm -f "$TMP"/piece*.pcap "$TMP"/conv*.pcap "$TMP"/var*.pcap "$TMP"/shift.pcap "$TMP"/probe.pcap "$TMP"/raw.pcap

# 3. Doubling: append to the file a rewritten (fresh IPs and sequence numbers), time-shifted copy
#    of itself, or only of as many leading units as are still needed to reach BENCH_MB. Units lie
#    every PERIOD microseconds, so copying the first k of c units and shifting them by c*PERIOD
#    places them as units c..c+k-1: timestamps keep increasing across the whole file.
unit_pkts=$(npackets "$TMP/unit.pcap")
unit_bytes=$(($(stat -c %s "$TMP/unit.pcap") - 24)) # minus the pcap file header
PERIOD=$(($(last_us "$TMP/unit.pcap") - BASE_US + GAP_US))
target=$((BENCH_MB * 1048576))
need_units=$(((target - 24 + unit_bytes - 1) / unit_bytes))
((need_units >= 1)) || need_units=1
log "base: ${#pieces[@]} captures; unit: $VARIANTS copies, $unit_pkts packets, $((unit_bytes / 1024)) KiB," \
	"$(fmt_us "$PERIOD") s; doubling to $need_units units"
cur=$TMP/cur.pcap
mv "$TMP/unit.pcap" "$cur"
have=1
step=0
while ((have < need_units)); do
	step=$((step + 1))
	k=$((need_units - have < have ? need_units - have : have))
	# -r: keep (not delete) packets 1..k*unit_pkts, the first k units
	editcap -r -F pcap -t "$(fmt_us $((have * PERIOD)))" "$cur" "$TMP/copy.pcap" 1-$((k * unit_pkts))
	tcprewrite --seed=$((1000 + step)) --tcp-sequence=$((1000 + step)) \
		-i "$TMP/copy.pcap" -o "$TMP/rw.pcap"
	mergecap -a -F pcap -w "$TMP/next.pcap" "$cur" "$TMP/rw.pcap"
	mv "$TMP/next.pcap" "$cur"
	rm -f "$TMP/copy.pcap" "$TMP/rw.pcap"
	have=$((have + k))
done
mv "$cur" "$OUT"
echo "$key" >"$KEY_FILE"
log "wrote $OUT: $(mib "$OUT") MiB, $((have * unit_pkts)) packets," \
	"$have units, $(fmt_us $((have * PERIOD))) s of capture time, in $(($(date +%s) - start_s)) s"
