#!/bin/bash
# Issue 36 on one H200: Speeder ranks the whole catalog (RecBole's full sort) beside the ID baselines, and
# the cold-target rows, 3 seeds (2020, 2021, 2022). Set-up and launch from the repo root on the GPU machine:
#   bash docs/results/prepare-device.sh 1; bash docs/results/prepare-device.sh 2
#   bash docs/results/prepare-device.sh 3 && bash docs/results/prepare-device.sh vision-wheel \
#     && GUARD_S=1080 bash docs/results/launch-timeline.sh docs/results/2026-12-04-h200-full-ranking/timeline.sh
# then poll without a break: WAIT=540 bash docs/results/2026-12-04-h200-full-ranking/poll.sh
# Every run reports RecBole's full-sort metrics (eval_args mode full, topk [10]), the candidate protocol and
# the cold-target rows (cold_item_max_inter 5) in one table per job.
# Launched 2026-12-04 15:52 UTC: the SASRec rows and Speeder on MMSynth finished; at 16:02 the machine was given
# back (a gap between two polls) and the ml-100k Speeder and ID rows were lost: timeline-2.sh ran them again.
set -u
source docs/results/device-lib.sh
guard ${GUARD_S:-1080}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
R=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
ids() {  # ids NAME DATASET MODELS [--key=value ...]: RecBole's models, 3 seeds, their README settings
  local name=$1 dataset=$2 models=$3; shift 3
  stamp "start $name: $models on $dataset $*"
  python benchmark.py --models=$models --dataset=$dataset --seeds=2020,2021,2022 --jobs=3 --epochs=30 \
    --stopping_step=5 --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
# ml-100k: Speeder's defaults (SmolLM2) and the three ID baselines; then both with 10% of the items held out
job 0 speeder ml-100k $SMOLLM2 $R &
ids ids ml-100k SASRec,BERT4Rec,GRU4Rec &
job 0 speeder-cold10 ml-100k $SMOLLM2 $R --cold_item_ratio=0.1 &
(ids sasrec-cold10 ml-100k SASRec --cold_item_ratio=0.1) &
# MMSynth (titles, images, ids): Speeder's defaults and SASRec
(python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"
 job 0 speeder-mmsynth MMSynth $SMOLLM2 $R &
 ids sasrec-mmsynth MMSynth SASRec; wait) &
wait
stop_guard
touch $J/DONE
