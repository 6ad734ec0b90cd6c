#!/bin/bash
# 2026-11-24, H100, machine 1 of 2: two Speeder recipes x 3 seeds (constant lr, LoRA on all linear layers; lr 2e-4 / 5e-4)
# and SASRec with a 10-item history (Speeder's history length), 3 seeds.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks /tmp/work/
cp .gpu/*.sh /tmp/jobs/
cd /tmp/work
python -c "from recbole_speeder.model.backbone import convert_gguf; print(convert_gguf('$G'))"
COMMON="--dataset=ml-100k --llm_path=$G --config_files=recbole_speeder/properties/recipes/ml-100k-gpu.yaml --lr_schedule=constant --lora_target_modules=all-linear --stage_epochs=[1,1,14] --stopping_step=8"
bg() {
  local name=$1; shift
  setsid nohup bash -c "time $*" > /tmp/jobs/$name.log 2>&1 < /dev/null &
  sleep 1
}
bg R1 python benchmark.py --models=Speeder --seeds=2020,2021,2022 --jobs=3 $COMMON --out_dir=/tmp/jobs/R1
bg R2 python benchmark.py --models=Speeder --seeds=2020,2021,2022 --jobs=3 $COMMON --learning_rate=0.0005 --out_dir=/tmp/jobs/R2
bg Q10 python benchmark.py --models=SASRec --dataset=ml-100k --seeds=2020,2021,2022 --epochs=30 --stopping_step=5 --MAX_ITEM_LIST_LENGTH=10 --out_dir=/tmp/jobs/Q10
sleep 40; pgrep -fa "benchmark" | cut -c1-150; tail -3 /tmp/jobs/*.log
