#!/bin/bash
# Does PPT in the recommendation row (ppt_layout: shared, with prompt_packing, the new defaults)
# keep PPT accuracy and VHR@1 of the paper's separate PPT prompts with left padding (what Speeder
# did before issue 18)? Speeder on ml-100k with the GPU recipe, the same seeds for both; one GPU.
#
#     G=<SmolLM2 backbone as --llm_path takes it> OUT=<folder> bash docs/results/2026-11-30-h200/speed/ppt-equivalence.sh
#
# The two commands it runs (at the same time, 3 jobs each; 6 SmolLM2 runs fit one H200):
#   python benchmark.py --models=Speeder --dataset=ml-100k --seeds=2020,2021,2022 --jobs=3 --llm_path=$G \
#       --config_files=recbole_speeder/properties/recipes/ml-100k-gpu.yaml --ppt_layout=separate --prompt_packing=False
#   python benchmark.py <the same> --ppt_layout=shared --prompt_packing=True
# The recipe alone took 21 min for 3 seeds on an H100 (2026-11-24); SEEDS=2020 and, e.g.,
# EXTRA='--stage_epochs=[1,1,6] --stopping_step=6' make a shorter check (say so beside its numbers).
# The separate/padded runs reproduce what Speeder did before issue 18 (same computation): the
# recipe's rows of 2026-11-24 (H100, docs/results/2026-11-24-h100-long-recipe/recipe-long: test VHR@1
# 0.6829 / 0.7275 / 0.5196, last PPT accuracy 0.533 / 0.523 / 0.537) can stand in for them:
# LAYOUTS=shared runs only the new layout (3 jobs instead of 6).
# $OUT: <layout>/ (benchmark tables, per-run logs under *-jobs/), <layout>.log, summary.md: test
# VHR@1 per seed and layout, and the validation VHR@1 / PPT accuracy of every epoch.
set -u
G=${G:?set G to the SmolLM2 backbone (llm_path)}
OUT=${OUT:?set OUT to the output folder}
SEEDS=${SEEDS:-2020,2021,2022}
EXTRA=${EXTRA:-}
LAYOUTS=${LAYOUTS:-separate shared}
PY=${PY:-python}
mkdir -p "$OUT"
for layout in $LAYOUTS; do
    packing=True
    [ "$layout" = separate ] && packing=False
    # shellcheck disable=SC2086
    $PY benchmark.py --models=Speeder --dataset=ml-100k --seeds="$SEEDS" --jobs=3 --llm_path="$G" \
        --config_files=recbole_speeder/properties/recipes/ml-100k-gpu.yaml --ppt_layout=$layout \
        --prompt_packing=$packing $EXTRA --out_dir="$OUT/$layout" > "$OUT/$layout.log" 2>&1 &
done
wait
$PY - "$OUT" > "$OUT/summary.md" <<'EOF'
import csv, glob, os, re, sys
out = sys.argv[1]
print("# PPT layout: shared (packed) vs separate (padded), Speeder on ml-100k\n")
print("| layout | seed | test VHR@1 | last valid VHR@1 | last PPT accuracy | best valid VHR@1 | PPT accuracy per epoch |")
print("|---|---|---|---|---|---|---|")
for layout in ("separate", "shared"):
    tests = {}
    for path in glob.glob(os.path.join(out, layout, "*-runs.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                tests[row["seed"]] = row.get("vhr@1")
    for log in sorted(glob.glob(os.path.join(out, layout, "*-jobs", "Speeder-*", "run.log"))):
        seed = log.split("Speeder-")[-1].split(os.sep)[0]
        valid, ppt = [], []
        with open(log, errors="replace") as f:
            for line in f:
                m = re.search(r"vhr@1 : ([0-9.]+).*ppt_acc : ([0-9.]+)", line)
                if m:
                    valid.append(float(m.group(1)))
                    ppt.append(float(m.group(2)))
        print(f"| {layout} | {seed} | {tests.get(seed, '-')} | {valid[-1] if valid else '-'} | "
              f"{ppt[-1] if ppt else '-'} | {max(valid) if valid else '-'} | {' '.join(f'{p:.3f}' for p in ppt)} |")
EOF
cat "$OUT/summary.md"
