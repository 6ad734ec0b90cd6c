#!/bin/bash
# Issue 18 on one H200 (prepared 2026-12-01, when a first run of it was lost with its machine; run
# 2026-12-02), alone on the GPU: the compiled SmolLM2-shape rows after
# the changes of 2026-12-01, commits 9b48e5c and 8dcac3b (fused AdamW, the scoring head and the distillation projection compiled, the
# CUDA-graph step marks). n = 10, batch 128, 5 candidates, 10 timed steps timed 3 times after 3 warm-up steps:
#   1. llm_compile=reduce-overhead, left padding, Backbone and Speeder, with a profile of one step;
#   2. the same, Speeder with use_ppt=False (what PPT's question costs under CUDA graphs);
#   3. llm_compile=default with packed prompts, Backbone and Speeder (never compiled and timed on a GPU).
#   bash docs/results/prepare-device.sh 1; bash docs/results/prepare-device.sh 2
#   bash docs/results/prepare-device.sh 3 && GUARD_S=1320 bash docs/results/launch-timeline.sh docs/results/2026-12-02-h200/speed-rows.sh
# and poll without a break: WAIT=540 bash docs/results/2026-11-30-h200x2-c/poll.sh
set -u
source docs/results/device-lib.sh
guard ${GUARD_S:-1380}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
s="--backbone smollm2-shape --history 10 --warmup 3 --steps 10 --repeat 3"
speed 0 reduce-overhead $s --models Backbone,Speeder --set prompt_packing=False --set llm_compile=reduce-overhead --profile
speed 0 reduce-overhead-ppt-off $s --models Speeder --set prompt_packing=False --set llm_compile=reduce-overhead --set use_ppt=False
speed 0 compile-packed $s --models Backbone,Speeder --set prompt_packing=True --set llm_compile=default
stop_guard
touch $J/DONE
