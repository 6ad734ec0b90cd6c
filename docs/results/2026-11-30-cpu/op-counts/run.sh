#!/bin/bash
# Issue 18, 2026-11-30 (commit 01b7154): which part of Speeder dispatches the operators that the SmolLM2-shape
# GPU profile found over the bare backbone (9,963 against 6,505 per training step). The operator
# count of one step does not depend on the device or the batch, so the CPU can break it down:
# one profiled training step of batch 16 at n = 10 per variant (benchmarks/efficiency.py --profile).
#   bash docs/results/2026-11-30-cpu/op-counts/run.sh   (from the repo root; ~10 min on 2 cores)
set -u
OUT=docs/results/2026-11-30-cpu/op-counts
E="python benchmarks/efficiency.py --backbone smollm2-shape --history 10 --batch 16 --steps 1 --warmup 1 --device cpu --profile"
run() { local name=$1; shift; $E --out $OUT/$name "$@" > $OUT/$name.log 2>&1; echo "$name: $(grep -h 'operators dispatched' $OUT/$name/profile-*.txt)"; }
run backbone --models Backbone
run speeder --models Speeder
run no-ppt --models Speeder --set use_ppt=False
run no-distill --models Speeder --set distill_weight=0.0
run candidates-loss --models Speeder --set score_loss=candidates
run no-ppl --models Speeder --set use_ppl=False
