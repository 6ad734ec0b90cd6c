#!/bin/bash
# Progress of timeline.sh (2026-12-04-ppt): per Speeder run its validation VHR@1 after every 100 steps, the last
# validation's PPT accuracies and loss terms, its test result; the tables (in order and shuffled); then every log
# and table of /tmp/jobs in $OUT/jobs.tgz (without checkpoints).
#   WAIT=540 bash docs/results/2026-12-04-ppt/poll.sh
J=/tmp/jobs
for _ in $(seq 1 $(( ${WAIT:-0} / 10 ))); do [ -f $J/DONE ] && break; sleep 10; done
cat $J/timeline.log
for log in $(find $J -name run.log -path "*Speeder*" | sort); do
  echo "== $(basename $(dirname $(dirname $(dirname $log))))/$(basename $(dirname $log))"
  grep -A1 "valid result" $log | grep -o "vhr@1'*[ :]*[0-9.]*" | grep -o "[0-9.]*$" | tr '\n' ' '; echo
  grep -A1 "valid result" $log | tail -1 | grep -o "'\(ppt_acc[a-z_]*\|loss_[a-z]*\)': [0-9.]*" | tr '\n' ' '; echo
  grep "candidate test result" $log | grep -o "'vhr@1': [0-9.]*\|'ndcg@5': [0-9.]*\|'mrr': [0-9.]*" | tr '\n' ' '; echo
done
for table in $(find $J -name "*.md" | sort); do echo "== $table"; grep "^| [A-Z]" $table; done
grep -l "Traceback" $J/*.log $J/*/*/*/run.log 2>/dev/null | head -5
nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
tar czf $OUT/jobs.tgz --exclude='*-saved' --exclude='*.pth' --exclude='*.safetensors' --exclude='*.npy' -C $J . 2>/dev/null  # no checkpoints: a 557 MB archive cannot come back (2026-12-05)
ls -la $OUT/jobs.tgz
