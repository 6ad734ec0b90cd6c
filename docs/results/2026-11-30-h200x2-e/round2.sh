#!/bin/bash
# Round 2 (GPU 1 idle: the Gemma rows stopped at once, see README): the catalog recipe with
# --distill_weight=10.0, 3 seeds, on GPU 1, while GPU 0 finishes timeline.sh's distillation rows.
# Stopped after 11 min if still running (device time). Marks /tmp/jobs/DONE2 at its end.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
cd /tmp/work
J=/tmp/jobs
cat > /tmp/round2-body.sh <<'BODY'
( sleep 660; pkill -f "out_dir=/tmp/jobs/distill10" ) &
G=$!
echo "[$(date -u +%H:%M:%S)] start distill10 on GPU 1"
CUDA_VISIBLE_DEVICES=1 python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
  --llm_path=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
  --config_files=recbole_speeder/properties/recipes/ml-100k-gpu-catalog.yaml --out_dir=/tmp/jobs/distill10 \
  --distill_weight=10.0 > /tmp/jobs/distill10.log 2>&1
echo "[$(date -u +%H:%M:%S)] end distill10: exit $?"
pkill -P $G sleep; kill $G
touch /tmp/jobs/DONE2
BODY
setsid nohup bash /tmp/round2-body.sh >> $J/timeline.log 2>&1 < /dev/null &
echo "round 2 started"
