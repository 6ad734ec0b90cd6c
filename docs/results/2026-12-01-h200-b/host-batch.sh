#!/bin/bash
# nvidia-h200 (one GPU), 2026-12-01, the second machine of this folder's run (the first was released while idle, see
# README.md): issue 18, the training step that waits for nothing on the device (host-batch.patch: the
# trainer and the efficiency benchmark hand the LLM models the loader's host batch; Speeder moves the
# SASRec teacher's input and the catalog loss's targets in non-blocking copies; the trainer reads a step's
# loss once the next step is queued). Before = this tree with host-batch.patch reversed, after = this tree.
# 1. SmolLM2-shape speed rows, n = 10, batch 128, left padding, eager: before, then after;
# 2. a real training run, eager (the distill recipe on ml-100k, stage 3 only, 2 epochs of 100 steps, seed 2020,
#    SASRec features of 10 epochs: a timing run): after, then before (the features computed once);
# 3. the compiled speed row after (llm_compile=default), with a profile of one step.
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
guard ${GUARD_S:-720}
rm -rf /tmp/before && cp -r /tmp/work /tmp/before
(cd /tmp/before && patch -R -p1 < docs/results/2026-12-01-h200-b/host-batch.patch > $J/patch.log 2>&1); stamp "before tree: patch -R exit $?"
S="--backbone smollm2-shape --models Backbone,Speeder --history 10 --set prompt_packing=False --warmup 2 --steps 5"
(cd /tmp/before && speed 0 before-eager $S)
speed 0 after-eager $S
one() {  # one TREE NAME: a real eager training run from TREE
  stamp "start $2 from $1"
  (cd $1 && python run_recbole_speeder.py --model=Speeder --dataset=ml-100k --config_files=$RECIPE --llm_path=$SMOLLM2 \
    --seed=2020 --seq_encoder_epochs=10 --mpo_stages=[3] --stage_epochs=[0,0,2] > $J/$2.log 2>&1)
  stamp "end $2: exit $?; $(grep -o 'training \[time: [0-9.]*s' $J/$2.log | tr '\n' ' ')"
}
one /tmp/work train-after
mkdir -p /tmp/before/dataset/ml-100k && cp -r /tmp/work/dataset/ml-100k/features /tmp/before/dataset/ml-100k/
one /tmp/before train-before
speed 0 after-compile $S --set llm_compile=default --warmup 3 --steps 3 --profile
stop_guard
touch $J/DONE
