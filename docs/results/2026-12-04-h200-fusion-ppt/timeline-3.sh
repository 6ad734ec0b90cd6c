#!/bin/bash
# The third launch of 2026-12-04 on one H200, on what device time was left (about 12 minutes): SASRecEF / SASRecLF
# on MMSynth (beside SASRec) and on ml-100k, and PPT on MMSynth (Speeder's recipe, 21 + 21 + 336 steps of 64): the
# defaults (the distance question), the order question, PPT off. The ml-100k Speeder and TMF rows need ~15 minutes
# and were left for a later launch (timeline-2.sh). Launched as timeline.sh.
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
GGUF=$SMOLLM2

guard ${GUARD_S:-540}
python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"
( bench fusion-mmsynth MMSynth SASRec,SASRecEF,SASRecLF --epochs=30 --stopping_step=5 --text_encoder=llm --llm_path=$GGUF
  bench fusion-ml100k ml-100k SASRecEF,SASRecLF --epochs=30 --stopping_step=5 --text_encoder=llm --llm_path=$GGUF ) & P1=$!
job 0 mmsynth-ppt-distance MMSynth $GGUF $RECIPE & P2=$!
job 0 mmsynth-ppt-order MMSynth $GGUF $RECIPE --ppt_question=order & P3=$!
job 0 mmsynth-ppt-off MMSynth $GGUF $RECIPE --use_ppt=False & P4=$!
wait $P1 $P2 $P3 $P4
stop_guard
touch $J/DONE
