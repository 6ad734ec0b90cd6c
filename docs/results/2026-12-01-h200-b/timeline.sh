#!/bin/bash
# nvidia-h200 (one GPU), 2026-12-01, 03:14 UTC (run by ../launch-timeline.sh from /tmp/work; helpers in
# ../device-lib.sh).
# 1. Issue 18, alone on the GPU: the SmolLM2-shape speed rows with llm_compile=default (the decoder, MRC and the
#    SASRec teacher compiled; the batch's candidates drawn at once), n = 10 and then n = 50.
# 2. Issue 17, side by side on the GPU:
#    - Gemma-3-270M's label answer with PPT off, with and without the stage-1 reconstruction task
#      (recipes/ml-100k-gpu-distill.yaml --answer_head=index --use_ppt=False [--reconstruction_stages=[]]),
#      3 seeds each, once the Gemma GGUF and transformers 5.23 are in place (prepare-device.sh gemma ...);
#    - the rest of MLLM-MSR's summary prefill (recipes/ml-100k-gpu-mllmmsr.yaml --epochs=0), starting from the
#      summaries carried in .mllmmsr-cache (unpacked into /tmp/mllmmsr-cache).
# SPEED_ROWS=0 skips step 1. The guard stops what still runs after GUARD_S seconds; the summary cache is then packed into /tmp/cache-out
# (../2026-11-30-h200x2-c/poll.sh brings it back into $OUT).
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
MSR_RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-mllmmsr.yaml
ML=/tmp/work/dataset/ml-100k/features
count() { ls $1 2>/dev/null | wc -l; }
features_ready() { [ "$(count "$ML/seq-SASRec-*.npy")" -ge 1 ] && [ "$(count "$ML/seq-teacher-*.pt")" -ge 3 ]; }
guard ${GUARD_S:-1260}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
mkdir -p $ML && cp -r /tmp/mllmmsr-cache/preference_summary-* $ML/
stamp "summary cache: $(ls $ML/preference_summary-*/part-*.json 2>/dev/null | wc -l) parts"

SPEED="--backbone smollm2-shape --models Backbone,Speeder --set prompt_packing=False --set llm_compile=default --warmup 3 --steps 3"
if [ "${SPEED_ROWS:-1}" = 1 ]; then  # SPEED_ROWS=0: the learning rows and the prefill only
  speed 0 smollm2-compile-n10 $SPEED --history 10
  speed 0 smollm2-compile-n50 $SPEED --history 50
fi

( stamp "start mllmmsr-prefill"
  python run_recbole_speeder.py --model=MLLMMSR --dataset=ml-100k --llm_path=$SMOLLM2 --config_files=$MSR_RECIPE \
    --epochs=0 > $J/mllmmsr-prefill.log 2>&1
  stamp "end mllmmsr-prefill: exit $?" ) & P0=$!
( while ! gemma_ready; do sleep 5; done
  stamp "converting $GEMMA"
  PYTHONPATH=/tmp/site-gemma:$PYTHONPATH python -c "import transformers; print(transformers.__version__); from recbole_speeder.llm.backbone import convert_gguf; print(convert_gguf('$GEMMA'))" > $J/gemma-convert.log 2>&1
  touch $J/gemma-converted
  job 0 gemma-index-ppt-off ml-100k $GEMMA $RECIPE --answer_head=index --use_ppt=False ) & P1=$!
( while [ ! -f $J/gemma-converted ] || ! features_ready; do sleep 5; done
  job 0 gemma-index-ppt-off-no-recon ml-100k $GEMMA $RECIPE --answer_head=index --use_ppt=False --reconstruction_stages=[] ) & P2=$!
wait $P1 $P2
stamp "Gemma rows ended; prefill still running: $(kill -0 $P0 2>/dev/null && echo yes || echo no)"
wait $P0
stop_guard
mkdir -p /tmp/cache-out && CACHE_FROM=$ML OUT=/tmp/cache-out bash docs/results/2026-12-01-h200/mllmmsr-cache.sh > $J/cache-pack.log 2>&1
stamp "cache packed: $(ls $ML/preference_summary-*/part-*.json | wc -l) parts; $(cat $J/cache-pack.log | head -1)"
touch $J/DONE
