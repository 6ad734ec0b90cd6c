#!/bin/bash
# Device set-up shared by the GPU scripts of docs/results/ (from 2026-11-30 on) (run from the repo root on the GPU machine).
#   bash docs/results/prepare-device.sh 1   # call 1: carry .whl and .gguf/smollm2.part.aa
#   bash docs/results/prepare-device.sh 2   # call 2: carry .gguf/smollm2.part.ab
# Call 1 installs the wheels the image lacks (recbole, gguf, colorlog, texttable, thop) into
# /tmp/site and keeps the first half of the SmolLM2 GGUF; call 2 joins the halves (md5 checked),
# converts the GGUF once into $RECBOLE_SPEEDER_CACHE and points /tmp/smollm2-tok at the
# converted folder (its tokenizer). /tmp survives between calls while the machine stays warm.
set -u
export PYTHONPATH=/tmp/site RECBOLE_SPEEDER_CACHE=/tmp/rscache
G=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
case "$1" in
1)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  cp .gguf/smollm2.part.aa /tmp/smollm2.part.aa
  python3 -c "import torch, recbole, gguf; print('torch', torch.__version__, 'gpus', torch.cuda.device_count())"
  nvidia-smi --query-gpu=name,memory.total --format=csv ;;
2)
  mkdir -p /tmp/smollm2
  cat /tmp/smollm2.part.aa .gguf/smollm2.part.ab > $G
  md5sum $G  # a1231443440b107ff29f02bdb38c9d0a
  python3 -c "from recbole_speeder.llm.backbone import convert_gguf; print(convert_gguf('$G'))" > /tmp/converted.txt 2>/tmp/convert.err || cat /tmp/convert.err
  ln -sfn "$(tail -1 /tmp/converted.txt)" /tmp/smollm2-tok
  ls /tmp/smollm2-tok ;;
esac
