#!/bin/bash
# What the device timelines of docs/results/ share (from 2026-12-01 on): source it at the top of a
# timeline, which ../launch-timeline.sh runs from /tmp/work. The machine is set up by
# prepare-device.sh; every log goes to /tmp/jobs ($J).
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
SMOLLM2=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
GEMMA=/tmp/gemma/gemma-3-270m-q4_k_m.gguf
J=/tmp/jobs
mkdir -p $J/speed

stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

# job GPU NAME DATASET GGUF CONFIG_FILES [--key=value ...]: Speeder, 3 seeds (one process each) on one GPU.
# A Gemma GGUF puts transformers 5.23 (/tmp/site-gemma) first on the path.
job() {
  local gpu=$1 name=$2 dataset=$3 gguf=$4 files=$5 path=$PYTHONPATH; shift 5
  [ "$gguf" = "$GEMMA" ] && path=/tmp/site-gemma:$PYTHONPATH
  stamp "start $name on GPU $gpu: $dataset, $(basename $gguf), $files $*"
  PYTHONPATH=$path CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=$dataset \
    --seeds=2020,2021,2022 --jobs=3 --llm_path=$gguf --config_files="$files" --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}

# speed GPU NAME [efficiency.py options]: one efficiency table (batch 128, 5 candidates, 20 title tokens per item)
speed() {
  local gpu=$1 name=$2; shift 2
  stamp "start speed $name on GPU $gpu: $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmarks/efficiency.py --tokenizer /tmp/smollm2-tok --title-tokens 20 \
    --candidates 5 --batch 128 --steps 2 --warmup 1 --device cuda --out $J/speed/$name "$@" > $J/speed-$name.log 2>&1
  stamp "end speed $name: exit $?"
}

# before_tree PATCH: /tmp/before, a copy of /tmp/work with PATCH (a path in the tree) reversed: the code
# before a change, for timing both on one machine
before_tree() {
  rm -rf /tmp/before && cp -r /tmp/work /tmp/before
  (cd /tmp/before && patch -R -p1 < "$1" > $J/patch.log 2>&1); stamp "before tree: patch -R $1: exit $?"
}

# gemma_ready: the Gemma-3-270M GGUF is joined (prepare-device.sh gemma) and transformers 5.23 installed
gemma_ready() { [ -f /tmp/gemma/READY ] && [ -d /tmp/site-gemma/transformers ]; }

# features_ready: ml-100k's SASRec id features and the three seeds' distillation teachers are on disk (the first
# job that needs them makes them; a second job started before would make them again)
features_ready() {
  local f=/tmp/work/dataset/ml-100k/features
  [ "$(ls $f/seq-SASRec-*.npy 2>/dev/null | wc -l)" -ge 1 ] && [ "$(ls $f/seq-teacher-*.pt 2>/dev/null | wc -l)" -ge 3 ]
}

# gemma_label_rows GPU: issue 17's two Gemma-3-270M cells with the label answer and PPT off, with and without the
# stage-1 reconstruction task (recipes/ml-100k-gpu-distill.yaml, 3 seeds each), once the GGUF is joined
# (prepare-device.sh gemma aa .. ag) and converted; the second starts once the first has made the SASRec features.
gemma_label_rows() {
  local gpu=$1 recipe=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
  while ! gemma_ready; do sleep 5; done
  stamp "converting $GEMMA"
  PYTHONPATH=/tmp/site-gemma:$PYTHONPATH python -c "from recbole_speeder.llm.backbone import convert_gguf; print(convert_gguf('$GEMMA'))" \
    > $J/gemma-convert.log 2>&1
  job $gpu gemma-index-ppt-off ml-100k $GEMMA $recipe --answer_head=index --use_ppt=False &
  local first=$!
  while ! features_ready; do sleep 5; done
  job $gpu gemma-index-ppt-off-no-recon ml-100k $GEMMA $recipe --answer_head=index --use_ppt=False --reconstruction_stages=[]
  wait $first
}

# compiled_speed_rows GPU: issue 18's compiled SmolLM2-shape rows (n = 10, batch 128, 5 candidates), Backbone
# and Speeder, 10 timed steps timed 3 times: llm_compile reduce-overhead with a profile of one step, default, and
# default with packed prompts (no padding for PPT's rows). About 20 minutes alone on an H200 (the compilations).
compiled_speed_rows() {
  local gpu=$1 s="--backbone smollm2-shape --models Backbone,Speeder --history 10 --warmup 3 --steps 10 --repeat 3"
  speed $gpu reduce-overhead $s --set prompt_packing=False --set llm_compile=reduce-overhead --profile
  speed $gpu compile-default $s --set prompt_packing=False --set llm_compile=default
  speed $gpu compile-packed $s --set prompt_packing=True --set llm_compile=default
}

# guard SECONDS: stop every job still running after SECONDS, so the results come back within the device
# time; stop_guard (after the last wait) removes a guard that has not fired.
guard() {
  ( sleep "$1"; stamp "guard: stopping what still runs"; pkill -f benchmark.py; pkill -f run_recbole_speeder
    pkill -f efficiency.py ) &
  GUARD=$!
}
stop_guard() { pkill -P $GUARD sleep; kill $GUARD 2>/dev/null; }

# issue 39 (2026-12-04-ppt and later): set RECIPE and GGUF first.
# speeder GPU NAME [--key=value ...]: the recipe's 3 seeds, checkpoints kept, then the shuffled test of them
speeder() {
  local gpu=$1 name=$2; shift 2
  job $gpu $name ml-100k $GGUF $RECIPE --checkpoint_dir=$J/$name-saved "$@"
  shuffled $gpu $name Speeder --llm_path=$GGUF --config_files=$RECIPE "$@"
}

# shuffled GPU NAME MODEL [--key=value ...]: the test split with every history shuffled, from $J/NAME-saved
shuffled() {
  local gpu=$1 name=$2 model=$3; shift 3
  stamp "start shuffled test of $name"
  CUDA_VISIBLE_DEVICES=$gpu python docs/results/2026-12-04-ppt/shuffled_test.py --model=$model --dataset=ml-100k --saved=$J/$name-saved \
    --out_dir=$J/$name-shuffled "$@" > $J/$name-shuffled.log 2>&1
  stamp "end shuffled test of $name: exit $?"
}

# sasrec GPU: the headline's SASRec (command (a) of docs/results.md), then its test shuffled two ways
sasrec() {
  local gpu=$1
  stamp "start sasrec on GPU $gpu"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=SASRec --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
    --epochs=30 --stopping_step=5 --checkpoint_dir=$J/sasrec-saved --out_dir=$J/sasrec > $J/sasrec.log 2>&1
  stamp "end sasrec: exit $?"
  shuffled $gpu sasrec SASRec                                  # the whole stored history (MAX_ITEM_LIST_LENGTH 50)
  mv $J/sasrec-shuffled $J/sasrec-shuffled-all; mv $J/sasrec-shuffled.log $J/sasrec-shuffled-all.log
  shuffled $gpu sasrec SASRec --eval_shuffle_window=10         # Speeder's shuffles: the most recent 10 items
  mv $J/sasrec-shuffled $J/sasrec-shuffled-10; mv $J/sasrec-shuffled.log $J/sasrec-shuffled-10.log
}

# bench NAME DATASET MODELS [--key=value ...]: benchmark.py, seeds 2020-2022 (or $SEEDS), 3 processes at a time
bench() {
  local name=$1 dataset=$2 models=$3; shift 3
  stamp "start $name: $models on $dataset $*"
  python benchmark.py --models=$models --dataset=$dataset ${SEEDS:---seeds=2020,2021,2022} --jobs=3 --out_dir=$J/$name "$@" \
    > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
