#!/usr/bin/env bash
# Writes every user-visible output of one mxwatch binary on the bundled and
# third-party captures into a folder, so that two builds (before and after a
# refactor) can be compared byte for byte with `diff -r`:
#   tests/compare/outputs.sh BINARY OUTDIR
#   diff -r OUTDIR_BEFORE OUTDIR_AFTER
# Covers the table, JSON records, flow records, counters, stored rows, and the
# RFC 8460 report (text and JSON), with the demo policy and with none.
# Lines that differ from run to run by design (flow peaks with several
# workers, timings) are left out.
set -eu
M=$(realpath "$1")
OUT=$2
cd "$(dirname "$0")/../.."
rm -rf "$OUT"
mkdir -p "$OUT"
captures=$(find pcaps -name '*.pcap' -o -name '*.pcapng' | sort)
shared=$(ls ../shared/pcaps/*.pcap ../shared/pcaps/*.pcapng 2>/dev/null || true)
T=$(mktemp -d /tmp/mxwatch-compare.XXXXXX)
trap 'rm -rf "$T"' EXIT

run() { # NAME ARGS...: stdout, stderr (counters) and exit status
	local name=$1
	shift
	set +e
	"$M" "$@" >"$OUT/$name.out" 2>"$T/err"
	echo "exit $?" >"$OUT/$name.status"
	set -e
	grep -v -e 'peak' -e 'seconds' "$T/err" >"$OUT/$name.err" || true
	sed -i "s|$T|TMP|g" "$OUT/$name.out" "$OUT/$name.err"
}
rows() { # DB NAME: stored sessions, findings, server history
	sqlite3 "$1" "SELECT id, ts_start, ts_end, client_ip, server_ip, server_port, domain,
		mx_host, tls_version, starttls_offered, verified, record FROM sessions ORDER BY rowid;
		SELECT session_id, rule, severity, domain, mx_host, rfc8460, ts, message
		FROM findings ORDER BY rowid;
		SELECT * FROM server_history ORDER BY 1, 2;
		SELECT * FROM session_domains ORDER BY 1, 2;
		SELECT * FROM observed_dns ORDER BY 1, 2, 3;
		SELECT * FROM discovery ORDER BY 1;" >"$OUT/$2.rows"
}

for f in $captures $shared; do
	n=$(basename "$f")
	run "$n.flows" analyze --flows --db none --workers 1 "$f"
	run "$n.flows-json" analyze --flows --json --db none --workers 1 "$f"
	run "$n.table" analyze --db none --workers 1 "$f"
	run "$n.json" analyze --json --db none --workers 1 "$f"
done

"$M" policy import --db "$T/demo.db" etc/demo.policy >/dev/null
for w in 1 2; do
	cp "$T/demo.db" "$T/w$w.db"
	run "all.demo.table.w$w" analyze --db "$T/w$w.db" --config etc/demo.conf --workers $w \
		$captures $shared
	rows "$T/w$w.db" "all.demo.w$w"
	cp "$T/demo.db" "$T/j$w.db"
	run "all.demo.json.w$w" analyze --json --db "$T/j$w.db" --config etc/demo.conf --workers $w \
		$captures $shared
done
run all.report.text report --db "$T/w1.db"
run all.report.json report --db "$T/w1.db" --json --org compare
for fx in tests/findings/fixtures/*.policy; do
	n=$(basename "$fx" .policy)
	rm -f "$T/fx.db"
	"$M" policy import --db "$T/fx.db" "$fx" >/dev/null 2>&1 || continue
	run "fixture.$n" analyze --json --db "$T/fx.db" --workers 1 $captures $shared
done
echo "outputs of $M in $OUT: $(ls "$OUT" | wc -l) files"
