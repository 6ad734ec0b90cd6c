#!/bin/bash
# Issue 18 on one H200, alone on the GPU: the compiled SmolLM2-shape rows after the changes of 2026-12-01, commits 9b48e5c and 8dcac3b (the
# trainer's fused AdamW, the scoring head and the distillation projection compiled, the CUDA-graph step marks),
# against ../2026-12-01-h200-c/ (device-lib.sh compiled_speed_rows: reduce-overhead with a profile, default, and
# default with packed prompts, which were never compiled and timed together). About 20 minutes.
#   bash docs/results/prepare-device.sh 1; bash docs/results/prepare-device.sh 2
#   bash docs/results/prepare-device.sh 3 && GUARD_S=1500 bash docs/results/launch-timeline.sh docs/results/compiled-speed-rows.sh
# and poll without a break: WAIT=540 bash docs/results/2026-11-30-h200x2-c/poll.sh
set -u
source docs/results/device-lib.sh
guard ${GUARD_S:-1500}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
compiled_speed_rows 0
stop_guard
touch $J/DONE
