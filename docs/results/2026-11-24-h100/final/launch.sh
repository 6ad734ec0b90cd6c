#!/bin/bash
# Final runs: Speeder seeds 2020-2022 (SASRec features 100 epochs, long stage 3) and LLaRA on the same features.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks dataset /tmp/work/
cd /tmp/work
COMMON="--dataset=ml-100k --llm_path=$G --show_progress=False --train_batch_size=64 --eval_batch_size=128 --seq_encoder_epochs=100"
# pre-step alone: ml-100k copy, candidate sets, GGUF conversion (ZeroShot needs no training)
( time python benchmark.py --models=ZeroShot --seeds=2020 $COMMON --out_dir=/tmp/jobs/Z0 ) > /tmp/jobs/Z0.log 2>&1
tail -2 /tmp/jobs/Z0.log
SP="--text_encoder=llm --steps_per_epoch=200 --stage_epochs=[1,1,12] --stopping_step=5"
job() {
  local name=$1; shift
  mkdir -p /tmp/jobs/$name; ln -sfn /tmp/work/dataset /tmp/jobs/$name/dataset
  (cd /tmp/jobs/$name && setsid nohup bash -c "time $*" > /tmp/jobs/$name.log 2>&1 < /dev/null &)
  sleep 2
}
for s in 2020 2021 2022; do job F$s python /tmp/work/benchmark.py --models=Speeder --seeds=$s $COMMON $SP --out_dir=res; done
job L1 python /tmp/work/benchmark.py --models=LLaRA --seeds=2020 $COMMON --steps_per_epoch=1000 --epochs=2 --out_dir=res
sleep 5; pgrep -fc "python /tmp/work/benchmark"
