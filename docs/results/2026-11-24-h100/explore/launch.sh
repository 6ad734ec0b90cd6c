#!/bin/bash
# Call 2: assemble the GGUF, prepare shared data once, launch the jobs in their own sessions.
set -u
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/smollm2 /tmp/jobs
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G; md5sum $G
rm -rf /tmp/work; mkdir -p /tmp/work; cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks dataset .assets /tmp/work/
cd /tmp/work
COMMON="--dataset=ml-100k --llm_path=$G --show_progress=False --train_batch_size=64 --eval_batch_size=128"
# pre-step (alone): ml-100k copy, candidate sets, GGUF conversion; also the ZeroShot row
( time python benchmark.py --models=ZeroShot --seeds=2020 $COMMON --out_dir=/tmp/jobs/Z0 ) > /tmp/jobs/Z0.log 2>&1
tail -3 /tmp/jobs/Z0.log
SP="--text_encoder=llm --steps_per_epoch=300 --stage_epochs=[1,1,6] --stopping_step=3"
job() {  # name, command...
  local name=$1; shift
  mkdir -p /tmp/jobs/$name; ln -sfn /tmp/work/dataset /tmp/jobs/$name/dataset
  (cd /tmp/jobs/$name && setsid nohup bash -c "time $*" > /tmp/jobs/$name.log 2>&1 < /dev/null &)
  sleep 2
}
job S1 python /tmp/work/benchmark.py --models=Speeder --seeds=2020 $COMMON $SP --seq_encoder_epochs=100 --out_dir=res
job S2 python /tmp/work/benchmark.py --models=Speeder --seeds=2021 $COMMON $SP --seq_encoder_epochs=100 --out_dir=res
job S3 python /tmp/work/benchmark.py --models=Speeder --seeds=2022 $COMMON $SP --seq_encoder_epochs=100 --out_dir=res
job S4 python /tmp/work/benchmark.py --models=Speeder --seeds=2020 $COMMON $SP --seq_encoder_epochs=100 --learning_rate=0.001 --out_dir=res
job S5 python /tmp/work/benchmark.py --models=Speeder --seeds=2020 $COMMON $SP --seq_encoder_epochs=100 --learning_rate=0.0005 --lora_r=16 --lora_alpha=32 "\"--lora_target_modules=['q_proj','k_proj','v_proj','o_proj','gate_proj','up_proj','down_proj']\"" --out_dir=res
job S6 python /tmp/work/benchmark.py --models=Speeder --seeds=2020 $COMMON $SP --seq_encoder_epochs=10 --out_dir=res
job L1 python /tmp/work/benchmark.py --models=LLaRA --seeds=2020 $COMMON --seq_encoder_epochs=100 --steps_per_epoch=1000 --epochs=2 --out_dir=res
job M1 python /tmp/work/benchmark.py --models=MLLMMSR --seeds=2020 $COMMON --image_summarizer=none --train_batch_size=16 --eval_batch_size=16 --steps_per_epoch=200 --epochs=1 --eval_step=0 --out_dir=res
job B1 "python /tmp/work/benchmark.py --models=SASRec --seeds=2020 --dataset=ml-100k --epochs=10 --eval_step=0 --show_progress=False --out_dir=res10; python /tmp/work/benchmark.py --models=SASRec --seeds=2020 --dataset=ml-100k --epochs=100 --eval_step=0 --show_progress=False --out_dir=res100"
ps aux | grep -c "[b]enchmark.py"
