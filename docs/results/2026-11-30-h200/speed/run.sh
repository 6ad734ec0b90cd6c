#!/bin/bash
# Issue 18 on one H200: Speeder's training at the backbone's speed (PPT in the recommendation row,
# no mid-step synchronisation, padding-free packing) and the TFLOP/s columns. About 6 minutes.
#
# Run from the repository root of branch i18, with recbole / gguf on PYTHONPATH and SmolLM2's
# tokenizer folder in TOK (default /tmp/smollm2-tok); everything it keeps goes to $OUT:
#     OUT=/some/folder PYTHONPATH=/tmp/site bash docs/results/2026-11-30-h200/speed/run.sh
#
# Essential parts first, then optional ones while the elapsed time is below BUDGET (seconds):
#   1. check_packing.py: packed vs padded logits / gradients on the GPU, varlen vs grouped attention
#   2. SmolLM2 shape, Speeder (defaults: ppt_layout shared, prompt_packing) + Backbone + LLaRA,
#      n = 10, 5, 20, 50, with --profile (one training step of each model at n = 10)
#   3. Llama-2-7B shape, the same three models, n = 10, 50 (micro-batch 16 for training)
#   4. optional, SmolLM2 shape, Speeder at n = 10, 50: the paper's separate PPT prompts with left
#      padding (the layout before this issue), shared + padding, shared + grouped attention, no PPT
#   5. optional, 7B shape, Speeder at n = 10, 50: separate PPT prompts with left padding
# The rows of before this issue (same machine kind, same commands, 2026-11-30) are in the issue and
# in docs/benchmarks.md.
#
# $OUT (8 files): README.md (every table, the packing check, the profiles' host-side counts, the
# timeline), smollm2.json, llama7b.json, variants.json, smollm2.png / llama7b.png (when matplotlib
# is installed; otherwise redraw them from the JSON with benchmarks/efficiency.py --replot),
# profiles.txt, run.log.
set -u
OUT=${OUT:?set OUT to the output folder}
TOK=${TOK-/tmp/smollm2-tok}
BUDGET=${BUDGET:-300}
PY=${PY:-python}
# a smoke test elsewhere: DEVICE=cpu SMALL=tiny LARGE=tiny BATCH=8 TOK= CHECK_SIZE=8 bash .../run.sh
DEVICE=${DEVICE:-cuda}
SMALL=${SMALL:-smollm2-shape}
LARGE=${LARGE:-llama2-7b-shape}
BATCH=${BATCH:-128}
export CHECK_SIZE=${CHECK_SIZE:-128}
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
W=$(mktemp -d)
mkdir -p "$OUT"
E="$PY benchmarks/efficiency.py ${TOK:+--tokenizer $TOK} --title-tokens 20 --candidates 5 --batch $BATCH --steps 2 --warmup 1 --device $DEVICE"
SMOL="$E --backbone $SMALL"
L7B="$E --backbone $LARGE --micro-batch 16 --infer-micro-batch 128"
: > "$W/timeline.txt"

part() {  # part NAME optional|essential COMMAND...
    local name=$1 kind=$2
    shift 2
    if [ "$kind" = optional ] && [ "$SECONDS" -gt "$BUDGET" ]; then
        echo "$name: skipped at ${SECONDS} s (BUDGET=$BUDGET)" | tee -a "$W/timeline.txt"
        return
    fi
    local start=$SECONDS
    echo "== $name (start ${start} s): $*" | tee -a "$W/run.log"
    "$@" >> "$W/run.log" 2>&1
    local rc=$?
    echo "$name: rc=$rc, ${start}-${SECONDS} s" | tee -a "$W/timeline.txt"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
  $PY -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
} > "$W/machine.txt" 2>&1

part check essential $PY docs/results/2026-11-30-h200/speed/check_packing.py "$TOK" "$W/check.json"
# if varlen attention failed in the check (forward or backward), the timed runs use grouped attention
if ! $PY -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if isinstance(r.get('varlen'), dict) and not r['varlen'].get('fell back to grouped') else 1)" "$W/check.json" 2>/dev/null; then
    echo "varlen attention unusable here: the runs below use --packed-attention grouped" | tee -a "$W/timeline.txt"
    SMOL="$SMOL --packed-attention grouped"
    L7B="$L7B --packed-attention grouped"
fi
part smollm2 essential $SMOL --models Speeder,Backbone,LLaRA --history 10,5,20,50 --profile --out "$W/smollm2"
part llama7b essential $L7B --models Speeder,Backbone,LLaRA --history 10,50 --out "$W/llama7b"
part smol-separate-padded optional $SMOL --models Speeder --history 10,50 --set ppt_layout=separate --set prompt_packing=False --out "$W/v/smollm2-separate-padded"
part smol-shared-padded optional $SMOL --models Speeder --history 10,50 --set prompt_packing=False --out "$W/v/smollm2-shared-padded"
part 7b-separate-padded optional $L7B --models Speeder --history 10,50 --set ppt_layout=separate --set prompt_packing=False --out "$W/v/llama7b-separate-padded"
part smol-shared-grouped optional $SMOL --models Speeder --history 10,50 --packed-attention grouped --out "$W/v/smollm2-shared-grouped"
part smol-noppt optional $SMOL --models Speeder --history 10,50 --set use_ppt=False --out "$W/v/smollm2-noppt"

# ---- gather $OUT ----------------------------------------------------------------------------
{
    echo "# Issue 18 speed runs ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo '```'
    cat "$W/machine.txt"
    echo '```'
    echo
    echo "## Packed vs padded (check_packing.py)"
    echo
    echo '```'
    cat "$W/check.json" 2>/dev/null || echo "no check.json (see run.log)"
    echo '```'
    for d in "$W/smollm2" "$W/llama7b" "$W"/v/*; do
        [ -f "$d/efficiency.md" ] || continue
        echo
        echo "## $(basename "$d")"
        echo
        cat "$d/efficiency.md"
    done
    echo
    echo "## Host side of one training step (--profile, n = 10)"
    for f in "$W"/smollm2/profile-*.txt; do
        [ -f "$f" ] || continue
        echo
        echo "$(basename "$f"):"
        echo '```'
        sed -n '/^Host side/,$p' "$f"
        grep -E "Self CPU time total|Self CUDA time total" "$f"
        echo '```'
    done
    echo
    echo "## Timeline"
    echo
    echo '```'
    cat "$W/timeline.txt"
    echo '```'
} > "$OUT/README.md"
for d in smollm2 llama7b; do
    [ -f "$W/$d/efficiency.json" ] && cp "$W/$d/efficiency.json" "$OUT/$d.json"
    [ -f "$W/$d/efficiency.png" ] && cp "$W/$d/efficiency.png" "$OUT/$d.png"
done
$PY - "$W/v" "$OUT/variants.json" <<'EOF'
import json, os, sys
root, out = sys.argv[1:]
merged = {}
if os.path.isdir(root):
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "efficiency.json")
        if os.path.isfile(path):
            with open(path) as f:
                merged[name] = json.load(f)
with open(out, "w") as f:
    json.dump(merged, f, indent=1)
EOF
cat "$W"/smollm2/profile-*.txt > "$OUT/profiles.txt" 2>/dev/null
tail -c 4000000 "$W/run.log" > "$OUT/run.log"
cat "$OUT/README.md"
