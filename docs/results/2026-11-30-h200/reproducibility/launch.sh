#!/bin/bash
# Issue 20: the cost of `reproducibility: True` (deterministic kernels) on one H200.
# Prerequisite: the usual first call on a fresh machine (../../2026-11-24-h100-baselines/explore/setup.sh:
# wheels into /tmp/site, first GGUF half into /tmp). Then, one command each (each < 10 min):
#   bash docs/results/2026-11-30-h200/reproducibility/launch.sh SASRec
#   bash docs/results/2026-11-30-h200/reproducibility/launch.sh Speeder
# Prints the table and leaves reproducibility-<model>.{md,json} in $OUT (or /tmp/jobs).
set -eu
MODEL=${1:?SASRec or Speeder}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../../.." && pwd)
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false
unset CUBLAS_WORKSPACE_CONFIG  # the plugin sets it for reproducible runs; none for the others
OUTDIR=${OUT:-/tmp/jobs}; mkdir -p "$OUTDIR" /tmp/smollm2
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ "$MODEL" = Speeder ] && [ ! -f $G ]; then cat /tmp/smollm2.part.aa "$REPO/.gguf/smollm2.part.ab" > $G; fi
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r "$REPO/run_recbole_speeder.py" "$REPO/recbole_speeder" /tmp/work/
cd /tmp/work
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
EXTRA=""; [ "$MODEL" = Speeder ] && EXTRA="--llm_path=$G"
time python "$HERE/measure.py" --model=$MODEL $EXTRA --out="$OUTDIR"
