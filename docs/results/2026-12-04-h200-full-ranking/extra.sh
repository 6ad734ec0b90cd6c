#!/bin/bash
# Started beside timeline.sh's first launch (2026-12-04, 15:55 UTC): SASRec and Speeder on MMSynth with 10% of the
# items held out of training. SASRec's row finished; Speeder's was lost with the machine (timeline-2.sh ran it again).
set -u
source docs/results/device-lib.sh
R=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
python benchmark.py --models=SASRec --dataset=MMSynth --seeds=2020,2021,2022 --jobs=3 --epochs=30 --stopping_step=5 \
  --out_dir=$J/sasrec-mmsynth-cold10 --cold_item_ratio=0.1 > $J/sasrec-mmsynth-cold10.log 2>&1
job 0 speeder-mmsynth-cold10 MMSynth $SMOLLM2 $R --cold_item_ratio=0.1
