#!/bin/bash
# nvidia-h200, 2026-12-01, the third machine of this folder's run, the last device minutes: host-batch.sh's eager speed rows
# again with 20 timed steps (host-batch.sh timed 5): before (host-batch.patch reversed), then after, then before.
set -u
source docs/results/device-lib.sh
guard ${GUARD_S:-200}
rm -rf /tmp/before && cp -r /tmp/work /tmp/before
(cd /tmp/before && patch -R -p1 < docs/results/2026-12-01-h200-b/host-batch.patch > $J/patch.log 2>&1); stamp "before tree: patch -R exit $?"
S="--backbone smollm2-shape --models Backbone,Speeder --history 10 --set prompt_packing=False --warmup 3 --steps 20"
(cd /tmp/before && speed 0 before-eager-20 $S)
speed 0 after-eager-20 $S
(cd /tmp/before && speed 0 before-eager-20b $S)
stop_guard
touch $J/DONE
