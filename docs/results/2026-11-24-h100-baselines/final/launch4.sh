#!/bin/bash
# 2026-11-24, H100, machine 2 of 2: LLaRA seeds 2021 and 2022 (the seed-2020 row's settings) and one MLLM-MSR run (seed 2020).
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks /tmp/work/
cp .gpu/*.sh /tmp/jobs/
cd /tmp/work
python -c "from recbole_speeder.model.backbone import convert_gguf; print(convert_gguf('$G'))" 2>&1 | tail -1
COMMON="--dataset=ml-100k --llm_path=$G --show_progress=False"
bg() {
  local name=$1; shift
  setsid nohup bash -c "time $*" > /tmp/jobs/$name.log 2>&1 < /dev/null &
  sleep 1
}
bg L python benchmark.py --models=LLaRA --seeds=2021,2022 --jobs=2 $COMMON --train_batch_size=64 --eval_batch_size=128 --seq_encoder_epochs=100 --steps_per_epoch=1000 --epochs=2 --out_dir=/tmp/jobs/L
bg M python benchmark.py --models=MLLMMSR --seeds=2020 $COMMON --summary_batch_size=128 --steps_per_epoch=300 --epochs=2 --out_dir=/tmp/jobs/M
sleep 45; pgrep -fa "benchmark" | cut -c1-150; for f in /tmp/jobs/*.log; do tail -n 3 $f | cut -c1-200; done
