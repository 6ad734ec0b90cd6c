#!/bin/bash
# 2026-11-24, H100, machine A: Speeder without PPT, with a learning rate of its own for MRC/PPL
# (plugin_learning_rate) or a higher one for everything; 7 jobs on one H100.
# One leader per seed trains the SASRec features (cached); the other jobs of that seed start once
# the cache is written, so SASRec is not trained 7 times over.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks /tmp/work/
cp .gpu/*.sh /tmp/jobs/
cd /tmp/work
python -c "from recbole_speeder.model.backbone import convert_gguf; print(convert_gguf('$G'))" 2>&1 | tail -1
bg() {
  local name=$1; shift
  setsid nohup bash -c "time $*" > /tmp/jobs/$name.log 2>&1 < /dev/null &
  sleep 1
}
R=recbole_speeder/properties/recipes/ml-100k-gpu.yaml
COMMON="--models=Speeder --dataset=ml-100k --llm_path=$G --config_files=$R --stage_epochs=[1,1,10] --stopping_step=10 --use_ppt=False"
P="--plugin_learning_rate=0.002"
L="--learning_rate=0.001"
# leaders: one per seed
bg P2020 python benchmark.py --seeds=2020 $COMMON $P --out_dir=/tmp/jobs/P2020
bg P2021 python benchmark.py --seeds=2021 $COMMON $P --out_dir=/tmp/jobs/P2021
bg P2022 python benchmark.py --seeds=2022 $COMMON $P --out_dir=/tmp/jobs/P2022
# followers, once the seed's SASRec features are cached
follow() {
  local leader=$1; shift
  setsid nohup bash -c "until grep -q 'seq features: [0-9]' /tmp/jobs/$leader/*.log /tmp/jobs/$leader.log 2>/dev/null; do sleep 5; done; $*" > /dev/null 2>&1 < /dev/null &
}
follow P2020 "bash -c 'time python benchmark.py --seeds=2020 $COMMON $L --out_dir=/tmp/jobs/L2020' > /tmp/jobs/L2020.log 2>&1"
follow P2021 "bash -c 'time python benchmark.py --seeds=2021 $COMMON $L --out_dir=/tmp/jobs/L2021' > /tmp/jobs/L2021.log 2>&1"
follow P2022 "bash -c 'time python benchmark.py --seeds=2022 $COMMON $L --out_dir=/tmp/jobs/L2022' > /tmp/jobs/L2022.log 2>&1"
follow P2021 "bash -c 'time python benchmark.py --seeds=2021 $COMMON --out_dir=/tmp/jobs/N2021' > /tmp/jobs/N2021.log 2>&1"
sleep 100; pgrep -fa "benchmark" | cut -c1-150; for f in /tmp/jobs/*.log; do echo "== $f"; tail -n 2 $f | cut -c1-200; done; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
