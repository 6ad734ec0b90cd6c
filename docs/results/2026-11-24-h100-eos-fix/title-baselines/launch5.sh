#!/bin/bash
# 2026-11-24, H100, machine A: LLaRA and TALLRec re-run with the end-of-sequence fix, 3 seeds each, 6 jobs at once.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks /tmp/work/
cp .gpu/*.sh /tmp/jobs/
cd /tmp/work
python -c "from recbole_speeder.model.backbone import convert_gguf; print(convert_gguf('$G'))" 2>&1 | tail -1
python -c "import transformers, torch, peft; print(transformers.__version__, torch.__version__, peft.__version__)"
bg() {
  local name=$1; shift
  setsid nohup bash -c "time $*" > /tmp/jobs/$name.log 2>&1 < /dev/null &
  sleep 1
}
bg T python benchmark.py --models=LLaRA,TALLRec --dataset=ml-100k --seeds=2020,2021,2022 --jobs=6 --llm_path=$G --config_files=recbole_speeder/properties/recipes/ml-100k-gpu-title-baselines.yaml --out_dir=/tmp/jobs/T
sleep 60; pgrep -fa "benchmark" | cut -c1-150; for f in /tmp/jobs/*.log; do tail -n 3 $f | cut -c1-200; done; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
