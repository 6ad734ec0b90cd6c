#!/bin/bash
# After timeline.sh, on a fresh nvidia-h200 machine (one GPU; no x2 was lent then) with the last minutes of device time: does
# llm_compile shorten a real training step? The distill recipe on ml-100k, stage 3 only, 2 epochs of
# 100 steps, seed 2020, SASRec features of 10 epochs (a timing run, not a learning row), left padding
# (the recipe's); eager, then compiled, one after the other. Compare the epochs' training times.
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
guard ${GUARD_S:-250}
one() {  # one GPU NAME [--key=value ...]
  local gpu=$1 name=$2; shift 2
  stamp "start $name on GPU $gpu: $*"
  CUDA_VISIBLE_DEVICES=$gpu python run_recbole_speeder.py --model=Speeder --dataset=ml-100k --config_files=$RECIPE \
    --llm_path=$SMOLLM2 --seed=2020 --seq_encoder_epochs=10 --mpo_stages=[3] --stage_epochs=[0,0,2] "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
one 0 train-eager
one 0 train-compiled --llm_compile=default
stop_guard
touch $J/DONE
