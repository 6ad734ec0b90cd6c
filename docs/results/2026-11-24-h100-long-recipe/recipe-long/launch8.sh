#!/bin/bash
# 2026-11-24, H100, machine B: the ml-100k recipe with a longer stage 3 (200 + 200 + 3600 steps, no early
# stop), seeds 2020-2022, 3 jobs on one H100.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks /tmp/work/
cp .gpu/*.sh /tmp/jobs/
cd /tmp/work
python -c "from recbole_speeder.model.backbone import convert_gguf; print(convert_gguf('$G'))" 2>&1 | tail -1
R=recbole_speeder/properties/recipes/ml-100k-gpu.yaml
setsid nohup bash -c "time python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 --llm_path=$G --config_files=$R --stage_epochs=[1,1,18] --stopping_step=18 --out_dir=/tmp/jobs/R" > /tmp/jobs/R.log 2>&1 < /dev/null &
sleep 240; for f in $(find /tmp/jobs -name "*.log" | sort); do echo "== $f"; tail -n 2 $f | cut -c1-200; done; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
