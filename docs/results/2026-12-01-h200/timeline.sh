#!/bin/bash
# nvidia-h200 (one GPU), 2026-12-01, 01:40 UTC (run by ../launch-timeline.sh from /tmp/work; helpers in
# ../device-lib.sh).
# Learning rows (issue 17's missing SmolLM2 cells): recipes/ml-100k-gpu-distill.yaml with the paper's answer
# (--answer_head=index), 3 seeds each: PPT off; PPT off and no reconstruction task; no reconstruction task.
# Beside them, MLLM-MSR's preference summaries of every ml-100k training history (--summary_prefill, 4096
# prompts per generate call, --epochs=0), cached as they are made; mllmmsr-cache.sh packs them into $OUT so
# that a later run can carry them back for MLLM-MSR's fair row.
# The guard stops every job still running after GUARD_S seconds (19 min), so the results come back.
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
ML=/tmp/work/dataset/ml-100k/features
count() { ls $1 2>/dev/null | wc -l; }
features_ready() { [ "$(count "$ML/seq-SASRec-*.npy")" -ge 1 ] && [ "$(count "$ML/seq-teacher-*.pt")" -ge 3 ]; }
guard ${GUARD_S:-1140}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
sha256sum /tmp/smollm2-tok/* > $J/smollm2-converted.sha256  # the converted backbone, compared across machines

( stamp "start mllmmsr-prefill"
  python run_recbole_speeder.py --model=MLLMMSR --dataset=ml-100k --llm_path=$SMOLLM2 --summary_prefill=True \
    --summary_batch_size=4096 --epochs=0 --show_progress=False > $J/mllmmsr-prefill.log 2>&1
  stamp "end mllmmsr-prefill: exit $?" ) & P0=$!
job 0 index-ppt-off ml-100k $SMOLLM2 $RECIPE --answer_head=index --use_ppt=False & P1=$!
( while ! features_ready; do sleep 5; done
  job 0 index-ppt-off-no-recon ml-100k $SMOLLM2 $RECIPE --answer_head=index --use_ppt=False --reconstruction_stages=[] &
  job 0 index-no-recon ml-100k $SMOLLM2 $RECIPE --answer_head=index --reconstruction_stages=[] & wait ) & P2=$!
wait $P0 $P1 $P2
stop_guard
touch $J/DONE
