#!/bin/bash
# Round 2 (after timeline.sh): Gemma-3-270M with the paper's label answer (GPU 0) and with the short
# PPT question (GPU 1), the distill recipe, 3 seeds each; stopped after GUARD_S seconds.
set -u
export PYTHONPATH=/tmp/site-gemma:/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/gemma/gemma-3-270m-q4_k_m.gguf
J=/tmp/jobs
HERE=docs/results/2026-11-30-h200x2-f
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
job() {
  local gpu=$1 name=$2 files=$3; shift 3
  stamp "start $name on GPU $gpu: $files $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
    --llm_path=$G --config_files="$files" --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
( sleep ${GUARD_S:-600}; stamp "guard: stopping what still runs"; pkill -f benchmark.py; pkill -f run_recbole_speeder ) &
GUARD=$!
job 0 gemma-index $RECIPE --answer_head=index & P1=$!
job 1 gemma-ppt-short "$RECIPE $HERE/ppt-short.yaml" & P2=$!
wait $P1 $P2
pkill -P $GUARD sleep; kill $GUARD
touch $J/DONE2
