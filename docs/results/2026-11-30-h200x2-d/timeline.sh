#!/bin/bash
# The nvidia-h200-x2 run of 2026-11-30 at commit 2121bd0 (run by ../launch-timeline.sh from /tmp/work):
#   GPU 0: recipes/ml-100k-gpu-last-item.yaml as it is (the cut prompt, PPT after the history),
#          3 seeds (issue 17: does 0.7267 hold?), and the same with score_loss: catalog, 3 seeds
#          (6 jobs; SASRec features first, cached for GPU 1's jobs)
#   GPU 1: issue 18's speed rows with the cut prompt, alone on GPU 1 (the learning jobs of GPU 0
#          share the host): SmolLM2 shape Backbone / Speeder at n = 10, 50; 7B shape Backbone /
#          Speeder / LLaRA at n = 5, 10, 20, 50; then the recipe with train_batch_size 128, and
#          with LoRA on all linear layers at rank 16, 3 seeds each (6 jobs)
#   At 21 min every job still running is stopped, so the results come back within the device time.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
J=/tmp/jobs
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-last-item.yaml
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
job() {  # job GPU NAME [--key=value ...]: the recipe, 3 seeds (one job each), on one GPU
  local gpu=$1 name=$2; shift 2
  stamp "start $name on GPU $gpu: $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
    --llm_path=$G --config_files=$RECIPE --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
speed() {  # speed NAME ARGS...: one efficiency run on GPU 1
  local name=$1; shift
  stamp "start speed $name"
  CUDA_VISIBLE_DEVICES=1 python benchmarks/efficiency.py --tokenizer /tmp/smollm2-tok --title-tokens 20 --candidates 5 \
    --batch 128 --steps 2 --warmup 1 --device cuda --out $J/speed/$name "$@" > $J/speed-$name.log 2>&1
  stamp "end speed $name: exit $?"
}
GUARD_S=${GUARD_S:-1260}
( sleep $GUARD_S; stamp "guard: stopping what still runs"; pkill -f benchmark.py; pkill -f run_recbole_speeder; pkill -f efficiency.py ) &
GUARD=$!
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
job 0 last & P1=$!
job 0 catalog --score_loss=catalog & P2=$!
mkdir -p $J/speed
speed smollm2 --backbone smollm2-shape --models Backbone,Speeder --history 10,50
speed 7b --backbone llama2-7b-shape --models Backbone,Speeder,LLaRA --history 5,10,20,50 --micro-batch 16 --infer-micro-batch 128
job 1 batch128 --train_batch_size=128 & P3=$!
job 1 alllinear-r16 --lora_target_modules=all-linear --lora_r=16 --lora_alpha=32 & P4=$!
wait $P1 $P2 $P3 $P4
pkill -P $GUARD sleep; kill $GUARD  # a pending guard would kill a later round's jobs
touch $J/DONE
