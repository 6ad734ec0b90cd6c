#!/bin/bash
# Each run's validation curve (VHR@1 after every 100 steps; the PPT and reconstruction
# accuracies of the last validation) and its test result; the logs packed into $OUT.
J=/tmp/jobs
for log in $(find $J -name run.log | sort); do
  echo "== $(basename $(dirname $(dirname $(dirname $log))))/$(basename $(dirname $log))"
  grep -A1 "valid result" $log | grep -o "vhr@1 : [0-9.]*" | awk '{printf "%s ", $3}'; echo
  grep -A1 "valid result" $log | grep -o "ppt_acc : [0-9.]*\|recon_token_acc : [0-9.]*\|recon_exact : [0-9.]*" | tail -3 | tr '\n' ' '; echo
  grep -A1 "candidate test result" $log | grep -o "'vhr@1': [0-9.]*\|'mrr': [0-9.]*" | tr '\n' ' '; echo
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
tar czf $OUT/logs.tgz -C $J . 2>/dev/null
