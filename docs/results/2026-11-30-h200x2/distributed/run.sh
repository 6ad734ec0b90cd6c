#!/bin/bash
# Issue 19 on nvidia-h200-x2 (2 H200, 32 cores): multi-GPU training measured.
#   bash docs/results/2026-11-30-h200x2/distributed/run.sh      (from the repository root)
# Needs /tmp/site (recbole + gguf wheels; put on PYTHONPATH here), the SmolLM2 GGUF at $GGUF and
# its tokenizer folder at $TOK. About 7 minutes: a leg starts only when its expected time fits
# in BUDGET (default 450 s), and no command runs past HARD (default 500 s). $OUT gets
# summary.md (every table and check, rewritten after each leg), run.log (progress),
# throughput-1gpu.json, throughput-2gpu.json and logs.tar.gz (every command's output, the GPU
# utilisation samples): 5 files.
# A CPU dry run of the plumbing (tiny shapes) sets TP_BACKBONE, TP_STEPS, DATASET, GGUF, TOK,
# EXTRA, STEPS_ARG, ACC_STEPS_ARG.
set -u
HERE=docs/results/2026-11-30-h200x2/distributed
GGUF=${GGUF:-/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
TOK=${TOK:-/tmp/smollm2-tok}
BUDGET=${BUDGET:-450}
HARD=${HARD:-500}
TP_BACKBONE=${TP_BACKBONE:-llama2-7b-shape}
TP_STEPS=${TP_STEPS:-10}
DATASET=${DATASET:-ml-100k}
EXTRA=${EXTRA:-}
STEPS_ARG=${STEPS_ARG:-}                                # empty: the YAML's 100 steps per stage epoch
ACC_STEPS_ARG=${ACC_STEPS_ARG:---steps_per_epoch=20}    # the accelerate launch leg is shorter
OUT=${OUT:-/tmp/i19-out}
W=/tmp/i19-work
mkdir -p "$OUT" "$W"
# NVLink multicast stays off (KINDS.md): set here too, for every process started below
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONPATH=$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=8
export RECBOLE_SPEEDER_CACHE=/tmp/rs-cache
TORCHRUN="python3 -m torch.distributed.run --standalone"
ACCEL="python3 -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29533"
RUN="run_recbole_speeder.py --model=Speeder --dataset=$DATASET --config_files=$HERE/smollm2-short.yaml --llm_path=$GGUF $EXTRA"

START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
log() { echo "[$(elapsed) s] $*" | tee -a "$OUT/run.log"; }
fits() { [ $(( $(elapsed) + $1 )) -le "$BUDGET" ]; }   # fits SECONDS: does a leg that long fit?
ms() { echo $(( $(date +%s%N) / 1000000 )); }
# timed NAME LIMIT COMMAND...: output to $W/NAME.log, "NAME wall_ms exit" to $W/times.tsv;
# the limit is cut so that nothing runs past HARD
timed() {
  local name=$1 limit=$2; shift 2
  local left=$(( HARD - $(elapsed) ))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 15 ]; then log "$name: skipped (hard limit)"; return; fi
  local t0=$(ms)
  timeout "$limit" "$@" > "$W/$name.log" 2>&1
  local rc=$? wall=$(( $(ms) - t0 ))
  printf '%s\t%s\t%s\n' "$name" "$wall" "$rc" >> "$W/times.tsv"
  log "$name: exit $rc, $(( wall / 1000 )) s"
}
# dmon NAME: GPU utilisation samples (1 s) while the next commands run; stop with undmon
dmon() { nvidia-smi dmon -s u -d 1 > "$W/dmon-$1.log" 2>&1 & DMON=$!; }
undmon() { kill "$DMON" 2>/dev/null; wait "$DMON" 2>/dev/null; }
count() { ls "$1" 2>/dev/null | wc -l; }
last_checkpoint() { grep -o "Loading model parameters from [^ ]*" "$W/$1.log" 2>/dev/null | tail -n 1 | awk '{print $NF}'; }
# snapshot: summary.md and logs.tar.gz as they stand (a cut-off call still returns them)
snapshot() {
  python3 "$HERE/summarize.py" "$W" "$OUT" "$BUDGET" > "$OUT/summary.md.tmp" 2>> "$OUT/run.log" && mv "$OUT/summary.md.tmp" "$OUT/summary.md"
  rm -f "$OUT/summary.md.tmp"
  tar czf "$OUT/logs.tar.gz" -C "$W" . 2>> "$OUT/run.log"
}

log "start; budget $BUDGET s, hard limit $HARD s"
{ nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv; nvidia-smi topo -m
  python3 -c 'import torch, accelerate, transformers, peft; print("torch", torch.__version__, "cuda devices", torch.cuda.device_count(), "accelerate", accelerate.__version__, "transformers", transformers.__version__, "peft", peft.__version__)'
  env | grep -E "^(NCCL_NVLS_ENABLE|TORCH_SYMM_MEM_DISABLE_MULTICAST|NVSHMEM_DISABLE_NVLS)="; } >> "$OUT/run.log" 2>&1

# 1. Llama-2-7B shape (random weights, bf16, LoRA r=8 on q/v + Speeder's MRC and PPL, history 10):
#    one GPU, then two (DDP, then FSDP on the same model), per-GPU batches 16 and 32
TP="benchmarks/distributed_throughput.py --backbone $TP_BACKBONE --tokenizer $TOK --batch 16,32 --history 10 --steps $TP_STEPS --warmup 3"
timed tp-1gpu 150 $TORCHRUN --nproc_per_node=1 $TP --out "$OUT/throughput-1gpu.json"
timed tp-2gpu 180 $TORCHRUN --nproc_per_node=2 $TP --strategy ddp,fsdp --out "$OUT/throughput-2gpu.json"
snapshot

# 2. SmolLM2 on ml-100k, the same run script and YAML under every launcher
# a. one GPU, plain python (fills the GGUF conversion, the ml-100k copy and the feature caches)
dmon smol-1gpu; timed smol-1gpu 200 env CUDA_VISIBLE_DEVICES=0 python3 $RUN $STEPS_ARG; undmon
snapshot
# b. torchrun, 2 GPUs (DDP)
L0=$(count log/Speeder); S0=$(count saved)
dmon smol-torchrun; timed smol-torchrun 180 $TORCHRUN --nproc_per_node=2 $RUN $STEPS_ARG; undmon
log "torchrun run: log/Speeder +$(( $(count log/Speeder) - L0 )) file(s), saved/ +$(( $(count saved) - S0 )) folder(s) (process 0 alone writes)"
snapshot
# c. its checkpoint scored by one process (GPU 0), in the background while e runs (not timed)
CKPT_T=$(last_checkpoint smol-torchrun); EVAL_T=
if [ -n "$CKPT_T" ]; then
  ( timed smol-torchrun-eval1 150 env CUDA_VISIBLE_DEVICES=0 python3 $RUN $STEPS_ARG --checkpoint="$CKPT_T" ) & EVAL_T=$!
else log "no checkpoint in smol-torchrun.log"; fi
# e. accelerate launch, 2 GPUs, 20 steps per stage; then its checkpoint scored by one process
if fits 70; then
  timed smol-accelerate 150 $ACCEL $RUN $ACC_STEPS_ARG
  [ -n "$EVAL_T" ] && wait "$EVAL_T"; EVAL_T=
  CKPT_A=$(last_checkpoint smol-accelerate)
  if [ -n "$CKPT_A" ]; then timed smol-accelerate-eval1 120 env CUDA_VISIBLE_DEVICES=0 python3 $RUN $ACC_STEPS_ARG --checkpoint="$CKPT_A"
  else log "no checkpoint in smol-accelerate.log"; fi
else log "skipped: accelerate launch (budget)"; fi
[ -n "$EVAL_T" ] && wait "$EVAL_T"
snapshot
# d. two independent one-GPU jobs at once, one per GPU (what benchmark.py --jobs does)
if fits 100; then
  dmon smol-2jobs
  ( timed smol-2jobs-gpu0 180 env CUDA_VISIBLE_DEVICES=0 python3 $RUN $STEPS_ARG ) & P1=$!
  ( timed smol-2jobs-gpu1 180 env CUDA_VISIBLE_DEVICES=1 python3 $RUN $STEPS_ARG ) & P2=$!
  wait "$P1" "$P2"; undmon
  snapshot
else log "skipped: two jobs on two GPUs (budget)"; fi
# f. two jobs on ONE GPU: does one SmolLM2 job fill an H200? (last: optional)
if fits 110; then
  dmon smol-1gpu-2jobs
  ( timed smol-1gpu-2jobs-a 180 env CUDA_VISIBLE_DEVICES=0 python3 $RUN $STEPS_ARG ) & P1=$!
  ( timed smol-1gpu-2jobs-b 180 env CUDA_VISIBLE_DEVICES=0 python3 $RUN $STEPS_ARG ) & P2=$!
  wait "$P1" "$P2"; undmon
else log "skipped: two jobs on one GPU (budget)"; fi

log "done"
snapshot
cat "$OUT/summary.md"
