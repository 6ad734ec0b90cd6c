#!/bin/bash
# The three device calls made after timeline.sh had finished (2026-11-30, 14:52-14:58 UTC), with
# the device time left; they ran from /tmp/work as the timeline left it. Kept here as run.
# Call A: issue 19's accelerate-launch leg (skipped by distributed/run.sh for its budget) and
# one process scoring its checkpoint.
a() {
  cd /tmp/work && export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 PYTHONPATH=/tmp/work:/tmp/site HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=8 RECBOLE_SPEEDER_CACHE=/tmp/rs-cache CUDA_DEVICE_ORDER=PCI_BUS_ID
  G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  RUN="run_recbole_speeder.py --model=Speeder --dataset=ml-100k --config_files=docs/results/2026-11-30-h200x2/distributed/smollm2-short.yaml --llm_path=$G --steps_per_epoch=20"
  mkdir -p /tmp/acc
  timeout 240 python3 -m accelerate.commands.launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no --main_process_port 29533 $RUN > /tmp/acc/smol-accelerate.log 2>&1
  C=$(grep -o "Loading model parameters from [^ ]*" /tmp/acc/smol-accelerate.log | tail -1 | awk '{print $NF}')
  [ -n "$C" ] && timeout 150 python3 $RUN --checkpoint="$C" > /tmp/acc/smol-accelerate-eval1.log 2>&1
}
# Call B: issue 18's variants that speed/run.sh skipped for its budget, alone on GPU 1.
b() {
  cd /tmp/work && export PYTHONPATH=/tmp/work:/tmp/site CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
  E="python benchmarks/efficiency.py --tokenizer /tmp/smollm2-tok --title-tokens 20 --candidates 5 --batch 128 --steps 2 --warmup 1 --device cuda"
  $E --backbone smollm2-shape --models Speeder --history 10,50 --set use_ppt=False --out /tmp/v2/smollm2-noppt
  $E --backbone llama2-7b-shape --micro-batch 16 --infer-micro-batch 128 --models Speeder --history 10,50 --set use_ppt=False --out /tmp/v2/llama7b-noppt
  $E --backbone smollm2-shape --models Speeder --history 10,50 --packed-attention grouped --out /tmp/v2/smollm2-shared-grouped
}
# Call C: the cost of deterministic kernels (issue 20's script), SASRec.
c() { OUT=$OUT timeout 330 bash docs/results/2026-11-30-h200/reproducibility/launch.sh SASRec; }
"$@"
