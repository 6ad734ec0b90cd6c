#!/bin/bash
# Later calls: wait $1 seconds (or until no job runs), report validation progress, pack the logs.
end=$((SECONDS + $1))
while [ $SECONDS -lt $end ] && pgrep -f "benchmark" > /dev/null; do sleep 10; done
cd /tmp/jobs
for f in $(find . -name "run.log" -o -name "*.log" -maxdepth 4 | sort); do echo "== $f"; grep -aE "vhr@1 : |test result|Error|error:|Traceback|^real|MPO stage" $f | tail -5 | sed -E 's/ndcg@3.*ppt_acc/... ppt_acc/' | cut -c1-200; done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
tar czf $OUT/jobs.tgz --exclude='*/saved' --exclude='*.safetensors' --exclude='*.pt' --exclude='*.pth' $(ls) 2>/dev/null
ls -la $OUT
