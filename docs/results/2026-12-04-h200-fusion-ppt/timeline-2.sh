#!/bin/bash
# The second launch of 2026-12-04 on one H200: what the first launch (timeline.sh) lost when the machine was given
# back between two polls (Speeder with the order question, SASRecEF / SASRecLF on both datasets; TMF on ml-100k and
# Speeder with PPT off, which had just started). Same jobs and options as timeline.sh; launched the same way.
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
TMF_RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-tmf.yaml
GGUF=$SMOLLM2

guard ${GUARD_S:-1140}
python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"
speeder 0 order --ppt_question=order & P1=$!
( bench fusion-mmsynth MMSynth SASRec,SASRecEF,SASRecLF --epochs=30 --stopping_step=5 --text_encoder=llm --llm_path=$GGUF
  bench fusion-ml100k ml-100k SASRecEF,SASRecLF --epochs=30 --stopping_step=5 --text_encoder=llm --llm_path=$GGUF ) & P3=$!
while ! features_ready; do sleep 5; done
speeder 0 ppt-off --use_ppt=False & P7=$!
bench tmf-ml100k ml-100k TMF --llm_path=$GGUF --config_files=$TMF_RECIPE & P6=$!
wait $P1 $P3 $P6 $P7
stop_guard
touch $J/DONE
