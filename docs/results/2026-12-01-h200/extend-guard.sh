#!/bin/bash
# Replace timeline.sh's guard by one that fires at $1 (device clock, e.g. 02:05:30), and stop MLLM-MSR's
# prefill at $2 (its cache keeps every round written so far), so that the learning rows have the GPU.
# The stopping commands run from script files: `pkill -f WORD` in a command line that holds WORD
# would stop its own shell first.
set -u
for s in $(pgrep -x sleep); do
  parent=$(ps -o ppid= -p $s | tr -d ' ')
  if ps -o args= -p $parent | grep -q "timeline.sh"; then kill -9 $parent; kill $s; fi
done
cat > /tmp/guard-late.sh <<'END'
sleep $(( $(date -d "$1" +%s) - $(date +%s) ))
echo "[$(date -u +%H:%M:%S)] guard: stopping what still runs" >> /tmp/jobs/timeline.log
pkill -f benchmark.py; pkill -f run_recbole_speeder
END
cat > /tmp/prefill-stop.sh <<'END'
sleep $(( $(date -d "$1" +%s) - $(date +%s) ))
echo "[$(date -u +%H:%M:%S)] MLLM-MSR prefill stopped" >> /tmp/jobs/timeline.log
pkill -f summary_prefill
END
setsid nohup bash /tmp/guard-late.sh "$1" > /dev/null 2>&1 < /dev/null &
setsid nohup bash /tmp/prefill-stop.sh "$2" > /dev/null 2>&1 < /dev/null &
ps -eo pid,ppid,args | grep "sleep\|guard-late\|prefill-stop" | grep -v grep
