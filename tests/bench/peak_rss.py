#!/usr/bin/env python3
"""peak_rss.py OUT CMD... - runs CMD with stdout to /dev/null and stderr to OUT, then prints
its peak resident set size in KiB (getrusage of that one child) and its exit status."""
import os
import subprocess
import sys

with open(sys.argv[1], "w") as err:
    p = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
    _, status, usage = os.wait4(p.pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
