#!/bin/bash
# The nvidia-h200-x2 run of 2026-11-30 at commit 37811a9, all of it on the device without a call in
# between: issue 17's learning runs to the end, issue 18's speed runs, issue 19's multi-GPU legs.
#   bash docs/results/prepare-device.sh 1   # call 1 (carry .whl, .gguf/smollm2.part.aa)
#   bash docs/results/prepare-device.sh 2 && bash docs/results/2026-11-30-h200x2-b/launch.sh   # call 2 (carry .gguf/smollm2.part.ab)
#   bash docs/results/2026-11-30-h200x2-b/poll.sh   # later calls: progress, and everything in $OUT/jobs.tgz
# launch.sh copies the code to /tmp/work (each device call replaces the repo copy it starts in) and
# starts timeline.sh there in the background; every log and table goes to /tmp/jobs.
set -u
rm -rf /tmp/work /tmp/jobs; mkdir -p /tmp/work /tmp/jobs
cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks docs dataset /tmp/work/
cd /tmp/work
setsid nohup bash docs/results/2026-11-30-h200x2-b/timeline.sh > /tmp/jobs/timeline.log 2>&1 < /dev/null &
echo "timeline started (pid $!)"
