#!/bin/bash
# Issue 18, 2026-12-01 (commits 1288bd6, baa008b, dab67f2): the host operators of one compiled training step (llm_compile: default, left
# padding), tiny backbone, n = 10, batch 16 and 128, one profiled step after 3 warm-up steps (they pay the
# compilations), at three commits: 1288bd6 (the decoder compiled), baa008b (+ MRC and the SASRec teacher),
# dab67f2 (+ the batch's training candidates drawn at once, histories as numpy slices).
#   bash docs/results/2026-12-01-cpu/compile-ops/run.sh   (from the repo root; ~10 min on 2 cores)
set -u
D=$PWD/docs/results/2026-12-01-cpu/compile-ops
PY=$PWD/.venv/bin/python
for commit in 1288bd6 baa008b dab67f2; do
  rm -rf /tmp/ops-$commit && git worktree add -q /tmp/ops-$commit $commit
  for batch in 16 128; do
    for model in Backbone Speeder; do
      [ $model = Backbone ] && [ $commit != dab67f2 ] && continue
      (cd /tmp/ops-$commit && $PY benchmarks/efficiency.py --backbone tiny --history 10 --batch $batch --steps 1 --warmup 3 \
        --device cpu --profile --models $model --set prompt_packing=False --set llm_compile=default --out /tmp/ops-out > /dev/null 2>&1)
      cp /tmp/ops-out/profile-$model-n10.txt $D/$commit-$model-b$batch.txt
      echo "$commit $model batch $batch: $(grep -h 'operators dispatched' $D/$commit-$model-b$batch.txt)"
    done
  done
  git worktree remove --force /tmp/ops-$commit
done
