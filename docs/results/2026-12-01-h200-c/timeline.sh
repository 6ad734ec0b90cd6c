#!/bin/bash
# nvidia-h200 (one GPU), 2026-12-01, 04:43 UTC (run by ../launch-timeline.sh from /tmp/work; helpers in
# ../device-lib.sh).
# 1. Issue 18, alone on the GPU: the compiled SmolLM2-shape step (n = 10, batch 128, left padding), 10 timed
#    steps timed 3 times each (--repeat 3), Backbone and Speeder in one process per row:
#    llm_compile=reduce-overhead (CUDA graphs), then llm_compile=default, then reduce-overhead with TF32 for
#    the float32 matrix products (--float32-matmul-precision high) and a profile of one step. Rows after the
#    first reuse the inductor cache in /tmp, so they compile faster.
# 2. Issue 17, then: the rest of MLLM-MSR's summary prefill (recipes/ml-100k-gpu-mllmmsr.yaml --epochs=0) from
#    the summaries carried in .mllmmsr-cache (unpacked into /tmp/mllmmsr-cache), until the guard stops it; the
#    cache is then packed into /tmp/cache-out, which ../2026-11-30-h200x2-c/poll.sh brings back.
#   bash docs/results/prepare-device.sh 1; bash docs/results/prepare-device.sh 2
#   bash docs/results/prepare-device.sh 3 && bash docs/results/2026-12-01-h200/mllmmsr-cache.sh unpack \
#     && GUARD_S=1350 bash docs/results/launch-timeline.sh docs/results/2026-12-01-h200-c/timeline.sh
# and poll without a break: WAIT=540 bash docs/results/2026-11-30-h200x2-c/poll.sh
set -u
source docs/results/device-lib.sh
MSR_RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-mllmmsr.yaml
ML=/tmp/work/dataset/ml-100k/features
guard ${GUARD_S:-1350}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
mkdir -p $ML && cp -r /tmp/mllmmsr-cache/preference_summary-* $ML/
stamp "summary cache: $(ls $ML/preference_summary-*/part-*.json 2>/dev/null | wc -l) parts"

S="--backbone smollm2-shape --models Backbone,Speeder --history 10 --set prompt_packing=False --warmup 3 --steps 10 --repeat 3"
speed 0 reduce-overhead $S --set llm_compile=reduce-overhead
speed 0 compile-default $S --set llm_compile=default
speed 0 reduce-overhead-tf32 $S --set llm_compile=reduce-overhead --float32-matmul-precision high --profile

stamp "start mllmmsr-prefill"
python run_recbole_speeder.py --model=MLLMMSR --dataset=ml-100k --llm_path=$SMOLLM2 --config_files=$MSR_RECIPE \
  --epochs=0 > $J/mllmmsr-prefill.log 2>&1
stamp "end mllmmsr-prefill: exit $?"
stop_guard
mkdir -p /tmp/cache-out && CACHE_FROM=$ML OUT=/tmp/cache-out bash docs/results/2026-12-01-h200/mllmmsr-cache.sh > $J/cache-pack.log 2>&1
stamp "cache packed: $(ls $ML/preference_summary-*/part-*.json | wc -l) parts; $(head -1 $J/cache-pack.log)"
touch $J/DONE
