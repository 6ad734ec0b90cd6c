#!/bin/bash
# Pack MLLM-MSR's preference-summary cache of ml-100k (made by timeline.sh's prefill) into $OUT, in pieces of
# 15 MB (a file back from $OUT is at most 16 MiB), with its sha256. A later session puts the pieces in the
# ignored folder .mllmmsr-cache/, carries it, and unpacks it with `bash mllmmsr-cache.sh unpack`.
set -u
F=/tmp/work/dataset/ml-100k/features
if [ "${1:-}" = unpack ]; then
  mkdir -p $F && cat .mllmmsr-cache/summaries.tar.xz.* | tar xJf - -C $F && ls -d $F/preference_summary-*
  exit
fi
tar cf - -C $F $(cd $F && ls -d preference_summary-*) | xz -T8 -6 > /tmp/summaries.tar.xz
sha256sum /tmp/summaries.tar.xz; ls -la /tmp/summaries.tar.xz
split -b 15000000 /tmp/summaries.tar.xz $OUT/summaries.tar.xz.
