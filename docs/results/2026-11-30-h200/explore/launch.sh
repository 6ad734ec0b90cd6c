#!/bin/bash
# Exploration of Speeder's answer heads and the reconstruction task on ml-100k, one H200.
# After docs/results/prepare-device.sh 1 and 2. Seeds 2020 and 2022 (2022 never
# left the popularity level in the 2026-11-24 recipe runs); 100 + 100 + 600 steps of 64 sequences,
# validation every 100 steps, no early stop. Config 1 starts first and fills the feature caches
# (text by the backbone, SASRec per seed) that the others then read.
set -u
cd "$(dirname "$0")/../../../.."   # the repo root
export PYTHONPATH=/tmp/site:$PWD RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 \
       TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
R=recbole_speeder/properties/recipes/ml-100k-gpu.yaml
J=/tmp/jobs; mkdir -p $J
COMMON="--models=Speeder --dataset=ml-100k --seeds=2020,2022 --jobs=2 --llm_path=$G --config_files=$R --steps_per_epoch=100 --stage_epochs=[1,1,6] --stopping_step=10"
start() {  # name, options
  setsid nohup python benchmark.py $COMMON --out_dir=$J/$1 "${@:2}" > $J/$1.log 2>&1 < /dev/null &
}
start index-norecon --answer_head=index --reconstruction_stages=[]
sleep 150
start index-recon --answer_head=index --reconstruction_stages=[1]
start score-recon --answer_head=score --reconstruction_stages=[1]
start score-norecon --answer_head=score --reconstruction_stages=[]
start catalog-recon --answer_head=score --score_loss=catalog --reconstruction_stages=[1]
echo launched
