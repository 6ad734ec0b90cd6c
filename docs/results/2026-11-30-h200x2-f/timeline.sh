#!/bin/bash
# The nvidia-h200-x2 run of 2026-11-30 at commit 3706b26 (run by ../launch-timeline.sh from /tmp/work).
# Every learning row is recipes/ml-100k-gpu-distill.yaml (Speeder's defaults: scoring head at the
# last history item, catalog loss, distillation of SASRec with weight 10, reconstruction in stage 1,
# PPT after the history; 100 + 100 + 1600 steps) with the options shown, 3 seeds (one job each):
#   GPU 0: --distill_weight=30.0 (issue 17: does a larger weight go on helping?), then, once the
#          SASRec features and teachers of the 3 seeds are cached, --answer_head=index (the paper's
#          label answer, reconstruction in stage 1, now with distillation)
#   GPU 1: issue 18's speed rows first (the SmolLM2 shape with --profile; the 7B shape at n = 5, 10
#          with the short PPT question of ppt-short.yaml), then the short question as a learning row,
#          and, once the Gemma-3-270M GGUF is in /tmp/gemma and transformers 5.23 in /tmp/site-gemma,
#          the recipe on Gemma
#   At 21 min every job still running is stopped, so the results come back within the device time.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA=/tmp/gemma/gemma-3-270m-q4_k_m.gguf
J=/tmp/jobs
HERE=docs/results/2026-11-30-h200x2-f
FEATURES=/tmp/work/dataset/ml-100k/features
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
job() {  # job GPU NAME CONFIG_FILES [--key=value ...]: 3 seeds (one job each) on one GPU
  local gpu=$1 name=$2 files=$3; shift 3
  stamp "start $name on GPU $gpu: $files $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
    --llm_path=$G --config_files="$files" --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
features_ready() { [ "$(ls $FEATURES/seq-SASRec-*.npy 2>/dev/null | wc -l)" -ge 3 ] && [ "$(ls $FEATURES/seq-teacher-*.pt 2>/dev/null | wc -l)" -ge 3 ]; }
speed() {  # speed NAME [efficiency.py options]: one table on GPU 1
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
mkdir -p $J/speed
job 0 distill30 $RECIPE --distill_weight=30.0 & P1=$!
( while ! features_ready; do sleep 5; done; job 0 index-distill $RECIPE --answer_head=index ) & P2=$!
speed smollm2-profile --backbone smollm2-shape --models Backbone,Speeder --history 10,50 --profile
speed 7b-ppt-short --backbone llama2-7b-shape --models Backbone,Speeder --history 5,10 --micro-batch 128 \
  --infer-micro-batch 128 --set $'ppt_followup_template=\nGap {a}-{b} at most gap to {c}?'
( while ! features_ready; do sleep 5; done; job 1 ppt-short "$RECIPE $HERE/ppt-short.yaml" ) & P3=$!
( while [ ! -f /tmp/gemma/READY ] || [ ! -d /tmp/site-gemma/transformers ]; do sleep 5; done
  while ! features_ready; do sleep 5; done
  export PYTHONPATH=/tmp/site-gemma:/tmp/site:/tmp/work
  stamp "converting $GEMMA"
  python -c "import transformers; print(transformers.__version__); from recbole_speeder.llm.backbone import convert_gguf; print(convert_gguf('$GEMMA'))" > $J/gemma-convert.log 2>&1
  G=$GEMMA job 1 gemma $RECIPE ) & P4=$!
wait $P1 $P2 $P3 $P4
pkill -P $GUARD sleep; kill $GUARD  # a pending guard would kill a later round's jobs
touch $J/DONE
