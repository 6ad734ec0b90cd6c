#!/bin/bash
# Round 2 of the run, after timeline.sh (the SASRec features and the converted GGUF stay in /tmp):
# score_readout last_item, 3 seeds per GPU (3 jobs each):
#   GPU 0: a longer stage 3 (100 + 100 + 1600 steps)
#   GPU 1: without PPT (100 + 100 + 1000 steps), the PPT on/off row of that mode at equal steps
# Every job still running at 10.5 min is stopped, so the results come back within the device time.
#   bash docs/results/2026-11-30-h200x2-c/round2.sh   # then WAIT=... poll.sh
set -u
rm -rf /tmp/work /tmp/jobs; mkdir -p /tmp/work /tmp/jobs
cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks docs dataset /tmp/work/
cd /tmp/work
cat > /tmp/work/round2-jobs.sh <<'EOS'
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
J=/tmp/jobs
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
job() {
  local gpu=$1 name=$2; shift 2
  stamp "start $name on GPU $gpu: $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
    --llm_path=$G --config_files=recbole_speeder/properties/recipes/ml-100k-gpu-score.yaml --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
( sleep 630; stamp "10.5 min: stopping what still runs"; pkill -f benchmark.py; pkill -f run_recbole_speeder ) &
job 0 last-long --score_readout=last_item --stage_epochs=[1,1,16] --stopping_step=20 & A=$!
job 1 last-noppt --score_readout=last_item --stage_epochs=[1,1,10] --use_ppt=False & B=$!
wait $A $B
touch $J/DONE
EOS
setsid nohup bash /tmp/work/round2-jobs.sh > /tmp/jobs/timeline.log 2>&1 < /dev/null &
echo "round 2 started (pid $!)"
