#!/bin/bash
# Start a device run's background timeline on the GPU machine (used from 2026-11-30, commit 2121bd0, on).
#   bash docs/results/launch-timeline.sh docs/results/<date-machine>/timeline.sh
# Copies the code to /tmp/work (each device call replaces the repo copy it starts in, which
# would kill jobs running from it) and starts the timeline there with setsid; every log goes to
# /tmp/jobs. Poll with: WAIT=540 bash docs/results/2026-11-30-h200x2-c/poll.sh, one call after another
# until the timeline ends: a machine left without a call for 30 s is given back, and its jobs and /tmp with it
# (2026-12-01, 03:14 UTC: a timeline lost that way, see 2026-12-01-h200-b/README.md).
set -u
rm -rf /tmp/work /tmp/jobs; mkdir -p /tmp/work /tmp/jobs
cp -r benchmark.py run_recbole_speeder.py recbole_speeder benchmarks docs dataset tests /tmp/work/  # tests/data: the tiny dataset of GPU repros (from 2026-12-05)
cd /tmp/work
setsid nohup bash "$1" > /tmp/jobs/timeline.log 2>&1 < /dev/null &
echo "$1 started (pid $!)"
