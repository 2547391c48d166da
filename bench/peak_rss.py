#!/usr/bin/env python3
"""peak_rss.py CMD ARGS...: runs CMD, passes its stdout/stderr through, then
prints "peak_rss_bytes N" (the child's peak resident set, from getrusage) on
stdout. Used by engine_vs_ort.sh to measure every program the same way."""
import resource
import subprocess
import sys

rc = subprocess.run(sys.argv[1:]).returncode
print("peak_rss_bytes %d" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024),
      flush=True)
sys.exit(rc)
