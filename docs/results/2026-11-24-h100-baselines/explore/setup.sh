#!/bin/bash
# Call 1 on a fresh machine: wheels into /tmp/site, first GGUF half into /tmp.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && cp .gguf/smollm2.part.aa /tmp/smollm2.part.aa && ls -la /tmp/smollm2.part.aa && nvidia-smi --query-gpu=name,memory.total --format=csv
