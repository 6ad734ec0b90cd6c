#!/bin/bash
# Progress of timeline.sh: each Speeder run's validation VHR@1 after every 100 steps, its last PPT /
# reconstruction accuracies and its test result; the speed tables; GPU use; then every log and
# table of /tmp/jobs in $OUT/jobs.tgz, and a packed summary cache (/tmp/cache-out) when there is one.
#   WAIT=540 bash docs/results/2026-11-30-h200x2-c/poll.sh
J=/tmp/jobs
# WAIT=S: first wait up to S seconds for the timeline to finish (keeps the machine held)
for _ in $(seq 1 $(( ${WAIT:-0} / 10 ))); do [ -f $J/DONE ] && break; sleep 10; done
cat $J/timeline.log
for log in $(find $J -name run.log \( -path "*Speeder*" -o -path "*MLLMMSR*" \) | sort); do
  echo "== $(basename $(dirname $(dirname $(dirname $log))))/$(basename $(dirname $log))"
  grep -A1 "valid result" $log | grep -o "vhr@1 : [0-9.]*" | awk '{printf "%s ", $3}'; echo
  grep -A1 "valid result" $log | grep -o "ppt_acc : [0-9.]*\|recon_token_acc : [0-9.]*" | tail -2 | tr '\n' ' '; echo
  grep "candidate test result" $log | grep -o "'vhr@1': [0-9.]*\|'ndcg@5': [0-9.]*\|'mrr': [0-9.]*" | tr '\n' ' '; echo
done
grep -h "^| Speeder\|^| Backbone" $J/speed/*/efficiency.md 2>/dev/null
grep -h "Traceback\|Error" $J/*.log | head -5
nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
tar czf $OUT/jobs.tgz -C $J . 2>/dev/null
# a packed MLLM-MSR summary cache (../2026-12-01-h200/mllmmsr-cache.sh into /tmp/cache-out) comes back too
[ -d /tmp/cache-out ] && cp /tmp/cache-out/* $OUT/ 2>/dev/null && ls -la $OUT/summaries.tar.xz.* 2>/dev/null
ls -la $OUT/jobs.tgz
