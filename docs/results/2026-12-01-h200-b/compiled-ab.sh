#!/bin/bash
# Issue 18, for a later device run (not run yet): the compiled SmolLM2-shape step before and after host-batch.patch,
# ROUNDS times (default 1) before then after, 10 timed steps timed 3 times each (--repeat), alone on GPU 0; then
# the same step with llm_compile=reduce-overhead (CUDA graphs) after, and with TF32 for the float32 matrix
# products too (LoRA's adapters, MRC, the scoring head, the teacher: about 3 ms of the step's 33 ms of kernels
# ran as float32 GEMMs, 2026-12-01). Each compiled row pays ~5 min of compilation on its warm-up steps (seen
# 2026-12-01), so one round is ~20 minutes: most of one 30-minute device lease, or GPU 1 of an x2 (the host shared).
#   bash docs/results/prepare-device.sh 1; bash docs/results/prepare-device.sh 2
#   bash docs/results/prepare-device.sh 3 && GUARD_S=1500 bash docs/results/launch-timeline.sh docs/results/2026-12-01-h200-b/compiled-ab.sh
# and poll without a break: WAIT=540 bash docs/results/2026-11-30-h200x2-c/poll.sh
set -u
source docs/results/device-lib.sh
guard ${GUARD_S:-1500}
before_tree docs/results/2026-12-01-h200-b/host-batch.patch
S="--backbone smollm2-shape --models Backbone,Speeder --history 10 --set prompt_packing=False --warmup 3 --steps 10 --repeat 3"
for round in $(seq 1 ${ROUNDS:-1}); do
  (cd /tmp/before && speed 0 before-compile-$round $S --set llm_compile=default)
  speed 0 after-compile-$round $S --set llm_compile=default
done
speed 0 after-reduce-overhead $S --set llm_compile=reduce-overhead --profile
speed 0 after-reduce-overhead-tf32 $S --set llm_compile=reduce-overhead --float32-matmul-precision high
stop_guard
touch $J/DONE
