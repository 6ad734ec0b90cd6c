#!/bin/bash
# The order of the run (run by launch.sh from /tmp/work; times are estimates; 11 jobs at once):
#   GPU 0: recipes/ml-100k-gpu-score.yaml (100 + 100 + 1000 steps) with the scoring head reading
#          the last history item (score_readout: last_item) and both readouts summed (both),
#          3 seeds each (6 jobs, ~14 min; SASRec features first)
#   GPU 1: one-seed screens of the same recipe at its 100 + 100 + 500 steps (6 jobs, ~10 min):
#          ppt_question_positions (2020, 2022), learning_rate 0.001 (2020, 2022), last_item with
#          learning_rate 0.001 (2022) (5 jobs, ~10 min); then issue 18's 7B shape alone on GPU 1
#          (the learning jobs of GPU 0 still run beside it): Backbone and Speeder packed, Speeder
#          padded, with a short PPT follow-up question, and without PPT (~5 min)
#   At 17 min every job still running is stopped, so the results come back within the device time.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
J=/tmp/jobs
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-score.yaml
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
job() {  # job GPU NAME SEEDS [--key=value ...]: the recipe for SEEDS (one job per seed) on one GPU
  local gpu=$1 name=$2 seeds=$3; shift 3
  local n=$(echo $seeds | tr ',' '\n' | wc -l)
  stamp "start $name on GPU $gpu, seeds $seeds: $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=$seeds --jobs=$n \
    --llm_path=$G --config_files=$RECIPE --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
( sleep 1020; stamp "17 min: stopping what still runs"; pkill -f benchmark.py; pkill -f run_recbole_speeder; pkill -f efficiency.py ) &
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
job 0 last 2020,2021,2022 --score_readout=last_item --stage_epochs=[1,1,10] & P1=$!
job 0 both 2020,2021,2022 --score_readout=both --stage_epochs=[1,1,10] & P2=$!
job 1 pptpos 2020,2022 --ppt_question_positions=True & P3=$!
job 1 lr1e-3 2020,2022 --learning_rate=0.001 & P4=$!
job 1 last-lr1e-3 2022 --score_readout=last_item --learning_rate=0.001 & P5=$!
wait $P3 $P4 $P5
E="python benchmarks/efficiency.py --tokenizer /tmp/smollm2-tok --title-tokens 20 --candidates 5 --batch 128 --steps 2 --warmup 1 --device cuda --backbone llama2-7b-shape --micro-batch 16 --infer-micro-batch 128 --history 10,50"
SHORT=$(printf '\nIs the gap {a}-{b} at most the gap to {c}?')
speed() {  # speed NAME ARGS...: one efficiency run alone on GPU 1
  local name=$1; shift
  stamp "start speed $name"
  CUDA_VISIBLE_DEVICES=1 $E --out $J/speed/$name "$@" > $J/speed-$name.log 2>&1
  stamp "end speed $name: exit $?"
}
mkdir -p $J/speed
speed backbone-speeder --models Backbone,Speeder
speed padded --models Speeder --set prompt_packing=False
speed short-followup --models Speeder --set "ppt_followup_template=$SHORT"
speed noppt --models Speeder --set use_ppt=False
wait $P1 $P2
touch $J/DONE
