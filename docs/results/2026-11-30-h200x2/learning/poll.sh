#!/bin/bash
# Each run's validation curve (VHR@1 after every 100 steps), the last PPT / reconstruction
# accuracies, and the test result; every log and table packed into $OUT/jobs.tgz.
J=/tmp/jobs
for log in $(find $J -name run.log | sort); do
  echo "== $(basename $(dirname $(dirname $(dirname $log))))/$(basename $(dirname $log))"
  grep -A1 "valid result" $log | grep -o "vhr@1 : [0-9.]*" | awk '{printf "%s ", $3}'; echo
  grep -A1 "valid result" $log | grep -o "ppt_acc : [0-9.]*\|recon_token_acc : [0-9.]*\|recon_exact : [0-9.]*" | tail -3 | tr '\n' ' '; echo
  grep "candidate test result" $log | grep -o "'vhr@1': [0-9.]*\|'ndcg@5': [0-9.]*\|'mrr': [0-9.]*" | tr '\n' ' '; echo
done
grep -h "error\|Error" $J/*.log | head -5
nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
tar czf $OUT/jobs.tgz -C $J . 2>/dev/null
