#!/usr/bin/env bash
# Runs the whole suite: unit tests (plain, ASan+UBSan and valgrind), the
# libFuzzer targets briefly (make fuzz runs them longer), capture checks
# against tshark, real servers, and hostile-input runs under the sanitizers.
# Ends with one line for CI: "N passed, N failed, N skipped" (suites, not
# cases); a skipped suite is listed, never counted as passed.
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
skipped=0
failures=()
skips=()

# A suite passes (exit 0), fails, or is skipped (exit 77: it could not run
# here, which is never counted as passed).
suite() {
	local name=$1 rc
	shift
	echo "== $name"
	"$@"
	rc=$?
	if [ $rc = 0 ]; then
		passed=$((passed + 1))
	elif [ $rc = 77 ]; then
		skipped=$((skipped + 1))
		skips+=("$name")
	else
		failed=$((failed + 1))
		failures+=("$name")
	fi
}
skip_suite() { # NAME REASON
	echo "== $1"
	echo "skip: $2"
	skipped=$((skipped + 1))
	skips+=("$1 ($2)")
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

for t in "$@"; do
	suite "unit $t" build/tests/"$t"
	suite "unit $t (asan+ubsan)" build/san/tests/"$t"
done

# Memcheck sees what the sanitizers do not: reads of memory never written.
valgrind_units() {
	command -v valgrind >/dev/null || { echo "skip: valgrind is not installed"; return 77; }
	local t rc=0
	for t in "$@"; do
		if valgrind -q --error-exitcode=99 build/tests/"$t" >build/valgrind-"$t".log 2>&1; then
			echo "ok   $t"
		else
			echo "FAIL $t (build/valgrind-$t.log)"
			grep -m3 -A3 '^==[0-9]*== [A-Z]' build/valgrind-"$t".log
			rc=1
		fi
	done
	return $rc
}
suite "unit tests under valgrind (memcheck)" valgrind_units "$@"
suite "libFuzzer targets, 5 s each (packet, reassembly, smtp, tls, x509, dns, policy, ingest, whole captures)" \
	bash tests/fuzz/run.sh 5

captures=$(find pcaps -name '*.pcap' -o -name '*.pcapng' | sort)
shared=$(ls ../shared/pcaps/*.pcap ../shared/pcaps/*.pcapng 2>/dev/null || true)
suite "flow bytes vs tshark" python3 tests/check_captures.py ./mxwatch $captures $shared
suite "session records vs golden (tshark/openssl)" python3 tests/tshark_facts.py check ./mxwatch $captures $shared
suite "findings vs golden lists (policy fixtures)" python3 tests/findings/run.py ./mxwatch
suite "TLS 1.3 chains through key logs vs tshark's" python3 tests/tls13_keylog.py ./mxwatch
suite "Community IDs vs the specification's values and tshark's" \
	python3 tests/community_id_check.py ./mxwatch $captures
suite "verdicts vs a Postfix client's own log (kept judge capture)" bash tests/judge/judge_test.sh check
suite "RFC 8460 report keys, types and counts" python3 tests/report_check.py ./mxwatch
suite "command line" bash tests/cli.sh
suite "database faults: readers create nothing, damaged files refused, re-analysis idempotent" \
	bash tests/db_faults.sh
suite "prune: retention counts, what stays, reports after, bad arguments, locks" bash tests/prune_test.sh
suite "same results with 1, 2 and 3 workers" bash tests/workers_check.sh
suite "ingest: equal to analyze's store, idempotent, two sensors counted once, hostile lines rejected" \
	bash tests/ingest_test.sh
if [ "$(id -u)" = 0 ]; then
	suite "policy fetch against nsd (DNSSEC) + nginx (HTTPS)" bash tests/policy/test_fetch.sh ./mxwatch
	suite "policy fetch when DNS fails (unreachable resolver, SERVFAIL from unbound)" \
		bash tests/dns_faults.sh
	suite "results store under faults (locked, full filesystem, read-only, SIGKILL)" \
		bash tests/store_faults.sh
	suite "alerts into a real rsyslogd" bash tests/syslog_test.sh
	suite "live capture on a veth pair (tcpreplay, SIGHUP, SIGTERM, privilege drop)" \
		bash tests/live_test.sh
	suite "live capture of real SMTP sessions (Postfix + swaks on a veth pair)" \
		bash tests/live_mta_test.sh
	suite "live TLS 1.3 with its key log appended later (veth, tcpreplay)" \
		bash tests/live_keylog_test.sh
	suite "three sensors -> rsyslog RELP -> collector, with an outage and a restart: ingest = offline" \
		bash tests/network_test.sh
	suite "RFC 8460 reports sent: nginx HTTPS POSTs and Postfix mailto, once, retried, checked against SQL" \
		bash tests/tlsrpt_send_test.sh
	suite "verdicts vs a Postfix client enforcing DANE and MTA-STS over TLS 1.2 and 1.3 (nsd, unbound, nginx, 11 Postfix servers)" \
		bash tests/judge/judge_test.sh run
else
	for name in "policy fetch against nsd + nginx" "policy fetch when DNS fails" \
		"results store under faults" \
		"alerts into a real rsyslogd" \
		"live capture on a veth pair" "live capture of real SMTP sessions" \
		"live TLS 1.3 with its key log appended later" \
		"three sensors -> rsyslog RELP -> collector" \
		"RFC 8460 reports sent (nginx, Postfix)" \
		"verdicts vs a Postfix client enforcing DANE and MTA-STS"; do
		skip_suite "$name" "needs root (servers, namespaces)"
	done
fi
suite "hostile input (asan+ubsan)" python3 tests/robustness.py build/mxwatch-san $captures $shared
suite "attacks on the monitor (evasion captures)" python3 tests/evasion/run.py ./mxwatch build/evasion

echo
for f in "${skips[@]+"${skips[@]}"}"; do echo "SKIPPED: $f"; done
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
