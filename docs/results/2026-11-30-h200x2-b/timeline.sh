#!/bin/bash
# The order of the run (run by launch.sh from /tmp/work; times are estimates):
#   GPU 0: Speeder, recipes/ml-100k-gpu-score.yaml with stage 3 twice the recipe's (100 + 100 + 1000
#          steps; validation every 100 steps shows the recipe's 500), seeds 2020-2022 as 3 jobs on
#          the one GPU (~12 min; SASRec features first, ~2 min)
#   GPU 1: issue 18's speed runs alone on their GPU (speed/run.sh, ~6 min), then the same recipe
#          with use_ppt False (the "w/o PPT" row), 3 seeds (~6 min; the SASRec features are cached)
#   both:  when the learning jobs are done, issue 19's distributed/run.sh (~8 min, both GPUs)
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
J=/tmp/jobs
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
group() {  # group GPU NAME [--key=value ...]: 3 seeds of the recipe as 3 jobs on one GPU
  local gpu=$1 name=$2; shift 2
  stamp "start $name on GPU $gpu: $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 \
    --jobs=3 --llm_path=$G --config_files=recbole_speeder/properties/recipes/ml-100k-gpu-score.yaml \
    --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
group 0 score --stage_epochs=[1,1,10] & G0=$!
stamp "start speed on GPU 1"
CUDA_VISIBLE_DEVICES=1 OUT=$J/speed TOK=/tmp/smollm2-tok bash docs/results/2026-11-30-h200/speed/run.sh > $J/speed.log 2>&1
stamp "end speed: exit $?"
group 1 score-noppt --use_ppt=False & G1=$!
wait $G0 $G1
stamp "start distributed on GPUs 0, 1"
OUT=$J/distributed bash docs/results/2026-11-30-h200x2/distributed/run.sh > $J/distributed.log 2>&1
stamp "end distributed: exit $?"
touch $J/DONE
