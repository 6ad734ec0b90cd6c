#!/bin/bash
# Start one group of Speeder runs on ml-100k in the background, on one GPU:
#   bash start.sh <gpu> <name> [--key=value ...]
# 3 seeds (2020-2022) as 3 jobs of benchmark.py, the recipe recipes/ml-100k-gpu.yaml with a
# shorter schedule: 100 + 100 + 500 steps of 64 sequences, validation every 100 steps, no early
# stop; left-padded prompts (prompt_packing False: its GPU attention path was not yet checked)
# and RecBole's reproducibility False (no deterministic kernels, as in the earlier recipe runs). The code runs from a copy in /tmp/work (each device call replaces the repo copy it
# starts in), logs and tables go to /tmp/jobs/<name>/. After docs/results/prepare-device.sh 1, 2.
set -u
GPU=$1; NAME=$2; shift 2
SRC="$(cd "$(dirname "$0")/../../../.." && pwd)"
if [ ! -d /tmp/work/recbole_speeder ]; then
  mkdir -p /tmp/work && cp -r "$SRC"/benchmark.py "$SRC"/run_recbole_speeder.py "$SRC"/recbole_speeder "$SRC"/benchmarks /tmp/work/
fi
cd /tmp/work
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 CUDA_DEVICE_ORDER=PCI_BUS_ID \
       TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True CUDA_VISIBLE_DEVICES=$GPU
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p /tmp/jobs
setsid nohup python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 --llm_path=$G \
  --config_files=recbole_speeder/properties/recipes/ml-100k-gpu.yaml --steps_per_epoch=100 --stage_epochs=[1,1,5] \
  --stopping_step=10 --show_progress=False --prompt_packing=False --reproducibility=False --out_dir=/tmp/jobs/$NAME "$@" > /tmp/jobs/$NAME.log 2>&1 < /dev/null &
echo "started $NAME on GPU $GPU: $*"
