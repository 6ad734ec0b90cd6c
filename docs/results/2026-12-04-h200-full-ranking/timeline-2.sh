#!/bin/bash
# The second timeline of 2026-12-04 on one H200 (16:04-16:18 UTC): what timeline.sh's first launch lost when the
# machine was given back (ml-100k's Speeder and ID rows) and Speeder on MMSynth with 10% of the items held out.
# The ml-100k Speeder row with cold_item_ratio 0.1 was started and then stopped at 16:11 to leave the GPU to the
# others within the device time: it has no result. Launched as timeline.sh (prepare-device.sh 1, 2, 3, vision-wheel,
# then `bash docs/results/launch-timeline.sh docs/results/2026-12-04-h200-full-ranking/timeline-2.sh`).
set -u
source docs/results/device-lib.sh
guard 840
R=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
job 0 speeder ml-100k $SMOLLM2 $R &
job 0 speeder-cold10 ml-100k $SMOLLM2 $R --cold_item_ratio=0.1 &
(stamp "start ids"; python benchmark.py --models=SASRec,BERT4Rec,GRU4Rec --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 --epochs=30 --stopping_step=5 --out_dir=$J/ids > $J/ids.log 2>&1; stamp "end ids: exit $?") &
(python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"; job 0 speeder-mmsynth-cold10 MMSynth $SMOLLM2 $R --cold_item_ratio=0.1) &
wait
stop_guard
touch $J/DONE
