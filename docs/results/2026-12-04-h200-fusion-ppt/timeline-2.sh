#!/bin/bash
# Run 2026-12-05 (only its MMSynth order rows came back: ../2026-12-05-h200-ppt-order/). What the first launch (timeline.sh) lost when the machine was given back between two polls, and what
# the MMSynth PPT rows of timeline-3.sh ask next; for one H200 and about 20 minutes (the ml-100k Speeder rows take
# ~15 with their SASRec features). Launched as timeline.sh (prepare-device.sh 1, 2, 3, vision-wheel, then
# `bash docs/results/launch-timeline.sh docs/results/2026-12-04-h200-fusion-ppt/timeline-2.sh`).
#   ml-100k: Speeder with the order question and with PPT off, each followed by its shuffled test (the same
#            checkpoints, eval_shuffle_history); TMF with its recipe (Speeder's 1,800 steps of 64).
#   MMSynth: is the order question learnable inside Speeder in the probe's form? The paper's separate PPT prompt
#            (benchmarks/ppt_probe.py learned the order question in it with SmolLM2, 0.945), and a, b, c given
#            their position prompts (the order question then compares two position prompts), and histories of 5
#            items (the probe's length). Issue 38: the defaults compiled under CUDA graphs with prompt lengths in
#            steps of 16 (prompt_length_multiple), against timeline-3.sh's mmsynth-ppt-distance (wall_s, VHR@1).
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
TMF_RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-tmf.yaml
GGUF=$SMOLLM2

guard ${GUARD_S:-1140}
python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"
speeder 0 order --ppt_question=order & P1=$!
( job 0 mmsynth-order-separate MMSynth $GGUF $RECIPE --ppt_question=order --ppt_layout=separate
  job 0 mmsynth-order-positions MMSynth $GGUF $RECIPE --ppt_question=order --ppt_question_positions=True
  job 0 mmsynth-order-h5 MMSynth $GGUF $RECIPE --ppt_question=order --history_len=5 ) & P2=$!
job 0 mmsynth-compiled MMSynth $GGUF $RECIPE --llm_compile=reduce-overhead --prompt_length_multiple=16 & P5=$!
while ! features_ready; do sleep 5; done
speeder 0 ppt-off --use_ppt=False & P3=$!
bench tmf-ml100k ml-100k TMF --llm_path=$GGUF --config_files=$TMF_RECIPE & P4=$!
wait $P1 $P2 $P3 $P4 $P5
stop_guard
touch $J/DONE
