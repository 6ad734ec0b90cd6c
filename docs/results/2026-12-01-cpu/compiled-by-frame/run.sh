#!/bin/bash
# Issue 18, 2026-12-01 (commits 6c471e7 to 9b48e5c): the host operators of one compiled Speeder training step (by_frame.py), at
# 6c471e7 (AdamW multi-tensor; MRC, the SASRec teacher and the decoder compiled), then this tree with the
# multi-tensor AdamW (the scoring head and the distillation projection compiled too), then with the fused
# AdamW the trainer runs on a GPU. From the repo root; ~2 minutes on 2 cores.
#   bash docs/results/2026-12-01-cpu/compiled-by-frame/run.sh
set -u
D=docs/results/2026-12-01-cpu/compiled-by-frame
PY=$PWD/.venv/bin/python
rm -rf /tmp/bf-6c471e7 && git worktree add -q /tmp/bf-6c471e7 6c471e7
mkdir -p /tmp/bf-6c471e7/$D && cp $D/by_frame.py /tmp/bf-6c471e7/$D/
(cd /tmp/bf-6c471e7 && OPTIMIZER=foreach $PY $D/by_frame.py) > $D/by_frame-6c471e7.txt 2>/dev/null
git worktree remove --force /tmp/bf-6c471e7
OPTIMIZER=foreach $PY $D/by_frame.py > $D/by_frame-foreach.txt 2>/dev/null
$PY $D/by_frame.py > $D/by_frame.txt 2>/dev/null
head -1 $D/by_frame-6c471e7.txt $D/by_frame-foreach.txt $D/by_frame.txt
