#!/bin/bash
# The nvidia-h200-x2 run of 2026-11-30 at commit 3f0ffaf (run by ../launch-timeline.sh from /tmp/work).
# Every learning row is recipes/ml-100k-gpu-catalog.yaml (Speeder's defaults: scoring head at the
# last history item, catalog loss, reconstruction in stage 1, PPT; 100 + 100 + 1600 steps) with
# the options shown, 3 seeds (one job each):
#   GPU 0: --distill_weight=1.0 (issue 17: LLM-SRec's distillation of SASRec), then, once the
#          SASRec features and teachers of the 3 seeds are cached, --distill_weight=3.0
#   GPU 1: issue 18's 7B-shape rows with micro-batch 128 (Backbone / Speeder / LLaRA, n = 10, 50;
#          alone on GPU 1, the host shared), then the paper's answer (--answer_head=index: the
#          candidate's label token, with the stage-1 reconstruction task), and, once
#          carry-gemma.sh has put the Gemma-3-270M GGUF in /tmp/gemma, the same recipe on Gemma
#   At 21 min every job still running is stopped, so the results come back within the device time.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA=/tmp/gemma/gemma-3-270m-q4_k_m.gguf
J=/tmp/jobs
FEATURES=/tmp/work/dataset/ml-100k/features
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-catalog.yaml
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
job() {  # job GPU NAME [--key=value ...]: the recipe, 3 seeds (one job each), on one GPU
  local gpu=$1 name=$2; shift 2
  stamp "start $name on GPU $gpu: $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
    --llm_path=$G --config_files=$RECIPE --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
count() { ls $1 2>/dev/null | wc -l; }
GUARD_S=${GUARD_S:-1260}
( sleep $GUARD_S; stamp "guard: stopping what still runs"; pkill -f benchmark.py; pkill -f run_recbole_speeder; pkill -f efficiency.py ) &
GUARD=$!
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
job 0 distill1 --distill_weight=1.0 & P1=$!
( while [ "$(count "$FEATURES/seq-SASRec-*.npy")" -lt 3 ] || [ "$(count "$FEATURES/seq-teacher-*.pt")" -lt 3 ]; do sleep 5; done
  job 0 distill3 --distill_weight=3.0 ) & P2=$!
mkdir -p $J/speed
stamp "start speed 7b-mb128"
CUDA_VISIBLE_DEVICES=1 python benchmarks/efficiency.py --tokenizer /tmp/smollm2-tok --title-tokens 20 --candidates 5 \
  --batch 128 --steps 2 --warmup 1 --device cuda --out $J/speed/7b-mb128 --backbone llama2-7b-shape \
  --models Backbone,Speeder,LLaRA --history 10,50 --micro-batch 128 --infer-micro-batch 128 > $J/speed-7b-mb128.log 2>&1
stamp "end speed 7b-mb128: exit $?"
job 1 index --answer_head=index & P3=$!
( while [ ! -f /tmp/gemma/READY ]; do sleep 5; done
  stamp "converting $GEMMA"
  python -c "from recbole_speeder.llm.backbone import convert_gguf; print(convert_gguf('$GEMMA'))" > $J/gemma-convert.log 2>&1
  G=$GEMMA job 1 gemma ) & P4=$!
wait $P1 $P2 $P3 $P4
pkill -P $GUARD sleep; kill $GUARD  # a pending guard would kill a later round's jobs
touch $J/DONE
