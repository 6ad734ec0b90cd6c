#!/bin/bash
# 2026-11-24, H100, machine B: Speeder with letter labels and/or item vectors on the token-embedding norm.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks /tmp/work/
cp .gpu/*.sh .gpu/*.yaml /tmp/jobs/
cd /tmp/work
python -c "from recbole_speeder.model.backbone import convert_gguf; print(convert_gguf('$G'))" 2>&1 | tail -1
bg() {
  local name=$1; shift
  setsid nohup bash -c "time $*" > /tmp/jobs/$name.log 2>&1 < /dev/null &
  sleep 1
}
R=recbole_speeder/properties/recipes/ml-100k-gpu.yaml
L=/tmp/jobs/letters.yaml
COMMON="--dataset=ml-100k --llm_path=$G --stage_epochs=[1,1,10]"
bg LN python benchmark.py --models=Speeder --seeds=2020,2021,2022 --jobs=3 $COMMON --config_files=\"$R $L\" --item_vector_norm=token --out_dir=/tmp/jobs/LN
bg Lo python benchmark.py --models=Speeder --seeds=2022 $COMMON --config_files=\"$R $L\" --out_dir=/tmp/jobs/Lo
bg No python benchmark.py --models=Speeder --seeds=2022 $COMMON --config_files=$R --item_vector_norm=token --out_dir=/tmp/jobs/No
sleep 75; pgrep -fa "benchmark" | cut -c1-200; for f in /tmp/jobs/*.log; do tail -n 3 $f | cut -c1-200; done; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
