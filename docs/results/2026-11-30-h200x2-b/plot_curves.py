"""The Figure-5 curves of this folder's learning runs, drawn from their logs afterwards (the
runs predate the trainer writing them itself, recbole_speeder/trainer/curves.py):
    .venv/bin/python docs/results/2026-11-30-h200x2-b/plot_curves.py docs/results/2026-11-30-h200x2-b/output/learning/*.log
writes <log>-curves.csv and <log>-curves.png beside each log."""

import re
import sys

from recbole_speeder.trainer.curves import curve_row, write_curves

for path in sys.argv[1:]:
    rows, stage = [], None
    with open(path) as f:
        lines = f.read().splitlines()
    for k, line in enumerate(lines):
        found = re.search(r"MPO stage (\d): \d+ epoch", line)
        if found:
            stage = int(found.group(1))
        if "valid result" in line and k + 1 < len(lines):
            result = {m[0]: float(m[1]) for m in re.findall(r"([\w@]+) : ([\d.]+)", lines[k + 1])}
            rows.append(curve_row(len(rows), stage, result))
    print(path, write_curves(rows, path))
