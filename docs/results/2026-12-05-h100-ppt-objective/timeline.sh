#!/bin/bash
# 2026-12-05 (later), one GPU (it ran on an H100: no H200 could be started), about 20 minutes. Issue 39: is the order question learned inside Speeder once
# PPT carries the objective or the probe's learning rate? (benchmarks/ppt_probe.py learned it with SmolLM2 at
# 1e-3 with PPT alone; Speeder's recipe trains at 2e-4 with PPT about 0.23 of the rec / PPT mean beside
# distillation x 10.) And the order-sensitivity test of Speeder with and without PPT on ml-100k. Issue 38: the
# traceback of the compiled failure of 2026-12-05 (tiny dataset, SmolLM2, 3 steps a stage), and if that runs,
# one MMSynth seed compiled.
#   MMSynth (the order question in the paper's separate prompt, one per sequence): PPT weighted 20 (objective);
#            the learning rate 1e-3 (the probe's); both.
#   ml-100k: Speeder's defaults and --use_ppt=False, 3 seeds each with their checkpoints, then the test shuffled.
# Launched as timeline.sh (prepare-device.sh 1, 2, 3, vision-wheel, then
# `GUARD_S=... bash docs/results/launch-timeline.sh docs/results/2026-12-05-h200-ppt-objective/timeline.sh`).
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
GGUF=$SMOLLM2
ORDER="--ppt_question=order --ppt_layout=separate --ppt_ratio=1.0"

guard ${GUARD_S:-1140}
python dataset/prepare.py synthetic > $J/mmsynth-prepare.log 2>&1; stamp "MMSynth prepared: exit $?"
( rm -rf /tmp/tinydata && cp -r tests/data /tmp/tinydata
  stamp "start compiled-repro"
  CUDA_VISIBLE_DEVICES=0 python run_recbole_speeder.py --model=Speeder --dataset=tiny --data_path=/tmp/tinydata \
    --llm_path=$GGUF --config_files=$RECIPE --stage_epochs="[1,1,1]" --steps_per_epoch=3 --seq_encoder_epochs=2 \
    --llm_compile=reduce-overhead --prompt_length_multiple=16 > $J/compiled-repro.log 2>&1
  code=$?; stamp "end compiled-repro: exit $code"
  if [ $code != 0 ]; then grep -v "^\s*$" $J/compiled-repro.log | tail -40; else
    SEEDS=--seeds=2020 bench mmsynth-compiled MMSynth Speeder --llm_path=$GGUF --config_files=$RECIPE \
      --llm_compile=reduce-overhead --prompt_length_multiple=16; fi ) & P0=$!
speeder 0 default & P1=$!
( job 0 mmsynth-order-weight20 MMSynth $GGUF $RECIPE $ORDER --ppt_weight=20 ) & P2=$!
( job 0 mmsynth-order-lr1e-3 MMSynth $GGUF $RECIPE $ORDER --learning_rate=0.001
  job 0 mmsynth-order-weight20-lr1e-3 MMSynth $GGUF $RECIPE $ORDER --ppt_weight=20 --learning_rate=0.001 ) & P3=$!
while ! features_ready; do sleep 5; done
speeder 0 ppt-off --use_ppt=False & P4=$!
wait $P0 $P1 $P2 $P3 $P4
stop_guard
touch $J/DONE
