#!/bin/bash
# One H200, 2026-12-04: issue 37's rows (SASRecEF / SASRecLF / TMF beside SASRec, LLaRA and Speeder; TMF's 7B-shape
# efficiency) and issue 39's first PPT round on one GPU (the order question, PPT off, the shuffled tests).
# Run by ../launch-timeline.sh from /tmp/work after ../prepare-device.sh 1, 2, 3 and vision-wheel (helpers in
# ../device-lib.sh); poll with WAIT=540 bash docs/results/2026-12-04-ppt/poll.sh, one call after another.
#   1. alone on the GPU: benchmarks/efficiency.py at the Llama-2-7B shape, Speeder / LLaRA / TMF, n = 10 and 50;
#   2. then together: Speeder with the order question (its first seed makes ml-100k's SASRec features and the
#      3 teachers), SASRec with its checkpoints, SASRecEF / SASRecLF on ml-100k (text: the backbone's title vectors,
#      as Speeder's recipe) and on MMSynth with SASRec (text + images); LLaRA and TMF on MMSynth with Speeder's
#      MMSynth budget (21 batches of 64 a epoch, 18 epochs = 378 steps, as the recipe's 21 + 21 + 336); once the
#      features are made, TMF on ml-100k (its recipe: Speeder's 1,800 steps of 64) and Speeder with PPT off.
#      Each Speeder and SASRec job is followed by its shuffled test (eval_shuffle_history, same checkpoints).
# The guard stops what still runs after GUARD_S seconds (default 20 min).
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
TMF_RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-tmf.yaml
TITLE_RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-title-baselines.yaml
GGUF=$SMOLLM2

guard ${GUARD_S:-1200}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"
speed 0 7b-tmf --backbone llama2-7b-shape --models Speeder,LLaRA,TMF --history 10,50 --micro-batch 128 --infer-micro-batch 128

speeder 0 order --ppt_question=order & P1=$!
sasrec 0 & P2=$!
( bench fusion-ml100k ml-100k SASRecEF,SASRecLF --epochs=30 --stopping_step=5 --text_encoder=llm --llm_path=$GGUF
  bench fusion-mmsynth MMSynth SASRec,SASRecEF,SASRecLF --epochs=30 --stopping_step=5 --text_encoder=llm --llm_path=$GGUF ) & P3=$!
bench tmf-mmsynth MMSynth TMF --llm_path=$GGUF --config_files=$TMF_RECIPE --epochs=18 & P4=$!
bench llara-mmsynth MMSynth LLaRA --llm_path=$GGUF --config_files=$TITLE_RECIPE --epochs=18 & P5=$!
while ! features_ready; do sleep 5; done
bench tmf-ml100k ml-100k TMF --llm_path=$GGUF --config_files=$TMF_RECIPE & P6=$!
speeder 0 ppt-off --use_ppt=False & P7=$!
wait $P1 $P2 $P3 $P4 $P5 $P6 $P7
stop_guard
touch $J/DONE
