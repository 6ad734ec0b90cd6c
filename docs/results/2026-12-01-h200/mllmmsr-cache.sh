#!/bin/bash
# MLLM-MSR's preference-summary cache of ml-100k between device machines (a fresh machine starts with an empty disk).
#   bash mllmmsr-cache.sh          pack /tmp/work/dataset/ml-100k/features/preference_summary-* into $OUT, in pieces
#                                  of 15 MB (a file back from $OUT is at most 16 MiB), with its sha256
#   bash mllmmsr-cache.sh unpack   (in a call that carries .mllmmsr-cache/, the pieces kept here, ignored by git)
#                                  unpack them into /tmp/mllmmsr-cache, from where ../mllmmsr-fair-row.sh copies them
set -u
F=${CACHE_FROM:-/tmp/work/dataset/ml-100k/features}
if [ "${1:-}" = unpack ]; then
  rm -rf /tmp/mllmmsr-cache && mkdir -p /tmp/mllmmsr-cache
  cat .mllmmsr-cache/summaries.tar.xz.* | tar xJf - -C /tmp/mllmmsr-cache && ls /tmp/mllmmsr-cache/*/ | wc -l
  exit
fi
tar cf - -C $F $(cd $F && ls -d preference_summary-*) | xz -T8 -6 > /tmp/summaries.tar.xz
sha256sum /tmp/summaries.tar.xz; ls -la /tmp/summaries.tar.xz
split -b 15000000 /tmp/summaries.tar.xz $OUT/summaries.tar.xz.
