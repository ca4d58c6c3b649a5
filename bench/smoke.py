"""Smoke check of the benchmark suite (pytest-free; deliberately not under tests/).

    python bench/smoke.py

Runs ``python -m bench --quick --only ping`` from the repository root and checks that it
exits cleanly and reports every server it was meant to measure.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

res = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "ping"],
                     cwd=ROOT, capture_output=True, text=True, timeout=300)
out = res.stdout
ok = res.returncode == 0 and "(1) ping-pong" in out and "| sockcomp-nb |" in out \
    and "| raw-notifier |" in out
print(out if ok else out + res.stderr)
print("bench smoke check:", "OK" if ok else "FAILED")
sys.exit(0 if ok else 1)
