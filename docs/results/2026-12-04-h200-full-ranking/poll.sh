#!/bin/bash
# Progress of timeline.sh: each job's table once written, the Speeder runs' last validation, GPU use; then
# every log and table of /tmp/jobs in $OUT/jobs.tgz.   WAIT=540 bash docs/results/2026-12-04-h200-full-ranking/poll.sh
J=/tmp/jobs
for _ in $(seq 1 $(( ${WAIT:-0} / 10 ))); do [ -f $J/DONE ] && break; sleep 10; done
cat $J/timeline.log
for log in $(find $J -name run.log -path "*Speeder*" | sort); do
  echo "== $(basename $(dirname $(dirname $(dirname $log))))/$(basename $(dirname $log)): $(grep -c 'valid result' $log) validations"
  grep -A1 "valid result" $log | tail -1 | cut -c1-400
done
for t in $(find $J -name "*.md" | sort); do echo "== $t"; cat $t; done
grep -h "Traceback\|Error" $J/*.log $J/*/*/*/run.log 2>/dev/null | head -5
nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
tar czf $OUT/jobs.tgz -C $J . 2>/dev/null
ls -la $OUT/jobs.tgz
