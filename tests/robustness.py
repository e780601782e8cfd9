#!/usr/bin/env python3
"""Hostile-input check for `mxwatch analyze`, meant for the ASan+UBSan build
(whole-process runs; tests/unit/test_mutate.c covers 10,000 mutants in-process):
truncated, corrupted and random files must never crash it, must end with
status 0 or 2, and a truncated file must name the file and the packet while
still reporting the flows read before the damage.

usage: robustness.py MXWATCH CAPTURE...   (ends with "N passed, N failed")"""
import os
import random
import subprocess
import sys
import tempfile

ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:exitcode=99:abort_on_error=0",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=98")


def run(mxwatch, path, *extra):
    r = subprocess.run([mxwatch, "analyze", "--json", *extra, path], capture_output=True,
                       env=ENV, timeout=120)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def sanitizer_failed(code, err):
    return code in (98, 99) or "Sanitizer" in err or "runtime error" in err


def main():
    mxwatch, caps = sys.argv[1], sys.argv[2:]
    rng = random.Random(20261123)
    passed = failed = 0
    cases = 0
    with tempfile.TemporaryDirectory() as tmp:
        def case(name, data, check):
            nonlocal passed, failed, cases
            cases += 1
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(data)
            code, out, err = run(mxwatch, path)
            problem = None
            if sanitizer_failed(code, err):
                problem = "sanitizer report:\n" + err[-3000:]
            elif code not in (0, 2):
                problem = "exit status %d" % code
            else:
                problem = check(code, out, err, path)
            if problem:
                failed += 1
                print("FAIL %s: %s" % (name, problem))
            else:
                passed += 1

        for cap in caps:
            data = open(cap, "rb").read()
            base = os.path.basename(cap)
            # Flow records (--flows): every TCP flow, so any capture has some.
            full_flows = run(mxwatch, cap, "--flows")[1].count('"type":"flow"')

            def truncated(code, out, err, path, cut=None):
                if code == 2 and (path not in err or "packet" not in err):
                    return "error does not name file and packet: %r" % err
                return None

            # Cuts inside the file header, inside record headers and bodies.
            cuts = sorted({1, 10, 23, 24, 30, 40, len(data) // 3, len(data) // 2,
                           len(data) - 1, len(data) - 7} | {rng.randrange(1, len(data))
                                                            for _ in range(4)})
            for cut in cuts:
                if 0 < cut < len(data):
                    case("%s.cut%d" % (base, cut), data[:cut], truncated)

            def keeps_flows(code, out, err, path):
                if code != 2 and code != 0:
                    return "exit %d" % code
                code, out, err = run(mxwatch, path, "--flows")
                if sanitizer_failed(code, err):
                    return "sanitizer report:\n" + err[-3000:]
                if full_flows and out.count('"type":"flow"') == 0:
                    return "nothing reported from the intact first part"
                return None

            case("%s.half" % base, data[: len(data) * 3 // 4], keeps_flows)

            def anything(code, out, err, path):
                return None

            for i in range(8):
                buf = bytearray(data)
                for _ in range(rng.randrange(1, 40)):
                    pos = rng.randrange(len(buf))
                    buf[pos] = rng.randrange(256)
                case("%s.flip%d" % (base, i), bytes(buf), anything)
            # Corrupt only past the file header so the reader gets to the records.
            for i in range(4):
                buf = bytearray(data)
                start = min(len(buf) - 1, 24)
                for _ in range(rng.randrange(1, 8)):
                    pos = rng.randrange(start, len(buf))
                    buf[pos : pos + 4] = rng.randbytes(4)
                case("%s.rec%d" % (base, i), bytes(buf), anything)

        def rejected(code, out, err, path):
            if code != 2 or path not in err:
                return "random file not rejected with status 2 naming it: %d %r" % (code, err)
            return None

        for i in range(10):
            case("random%d.pcap" % i, rng.randbytes(rng.randrange(0, 5000)), rejected)
        case("empty.pcap", b"", rejected)

    print("%d cases" % cases)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
