#!/bin/bash
# Mid-run change (19:05 UTC): GPU 1's learning jobs (batch128, alllinear-r16) ran at ~2 min per
# 100 steps and could not reach their 1600 steps within the device time, so they are stopped
# (their early validation curves are kept) and GPU 1 measures two more speed rows instead:
# the 7B shape without PPT (n = 10, 50) and the SmolLM2 shape again (GPU 0's jobs still share the host).
#   bash docs/results/2026-11-30-h200x2-d/round2.sh   # then WAIT=... poll.sh
set -u
kill_tree() { local c; for c in $(pgrep -P $1); do kill_tree $c; done; kill $1 2>/dev/null; }
for p in $(pgrep -f "out_dir=/tmp/jobs/(batch128|alllinear-r16)"); do kill_tree $p; done
cd /tmp/work
cat > /tmp/work/round2-jobs.sh <<'EOS'
export PYTHONPATH=/tmp/site:/tmp/work RECBOLE_SPEEDER_CACHE=/tmp/rscache PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 \
       CUDA_DEVICE_ORDER=PCI_BUS_ID TOKENIZERS_PARALLELISM=false
J=/tmp/jobs
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
speed() {
  local name=$1; shift
  stamp "start speed $name"
  CUDA_VISIBLE_DEVICES=1 python benchmarks/efficiency.py --tokenizer /tmp/smollm2-tok --title-tokens 20 --candidates 5 \
    --batch 128 --steps 2 --warmup 1 --device cuda --out $J/speed/$name "$@" > $J/speed-$name.log 2>&1
  stamp "end speed $name: exit $?"
}
speed 7b-noppt --backbone llama2-7b-shape --models Speeder --history 10,50 --micro-batch 16 --infer-micro-batch 128 --set use_ppt=False
speed smollm2-again --backbone smollm2-shape --models Backbone,Speeder --history 10,50
touch $J/DONE2
EOS
setsid nohup bash /tmp/work/round2-jobs.sh > /tmp/jobs/round2.log 2>&1 < /dev/null &
echo "round 2 started (pid $!)"
