#!/bin/bash
# Round 3 (19:07 UTC), with the device time that was left: the best mode of round 1
# (score_loss: catalog), 3 seeds per GPU, the SASRec features cached by round 1:
#   GPU 0: without PPT (PPT on and off for the catalog loss)
#   GPU 1: learning rate 4e-4 (2x the recipe's)
# Every job still running at 9.5 min is stopped, so the results come back within the device time.
#   bash docs/results/2026-11-30-h200x2-d/round3.sh   # then WAIT=... poll.sh
set -u
rm -rf /tmp/work /tmp/jobs; mkdir -p /tmp/work /tmp/jobs
cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks docs dataset /tmp/work/
cd /tmp/work
cat > /tmp/work/round3-jobs.sh <<'EOS'
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
J=/tmp/jobs
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
job() {
  local gpu=$1 name=$2; shift 2
  stamp "start $name on GPU $gpu: $*"
  CUDA_VISIBLE_DEVICES=$gpu python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 \
    --llm_path=$G --config_files=recbole_speeder/properties/recipes/ml-100k-gpu-last-item.yaml --out_dir=$J/$name "$@" > $J/$name.log 2>&1
  stamp "end $name: exit $?"
}
( sleep 570; stamp "9.5 min: stopping what still runs"; pkill -f benchmark.py; pkill -f run_recbole_speeder ) & GUARD=$!
job 0 catalog-noppt --score_loss=catalog --use_ppt=False & A=$!
job 1 catalog-lr4e-4 --score_loss=catalog --learning_rate=0.0004 & B=$!
wait $A $B
pkill -P $GUARD sleep; kill $GUARD
touch $J/DONE
EOS
setsid nohup bash /tmp/work/round3-jobs.sh > /tmp/jobs/timeline.log 2>&1 < /dev/null &
echo "round 3 started (pid $!)"
