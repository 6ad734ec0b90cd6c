"""Report of benchmarks/efficiency.py: the markdown table and ratios, the merge of saved runs of one
setting, the plot, and the writing of efficiency.md / .json / .png."""

import json
import os

from efficiency_models import MODELS

ANCHORS = ("LLaRA", "TMF")  # the paper's speed anchors: their time over Speeder's and the backbone's


def _num(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def _ms(row, phase):
    """A row's ms per sample of ``phase``; with ``--repeat``, the fastest and slowest timing in brackets."""
    runs = row.get(f"{phase}_ms_runs")
    text = _num(row.get(f"{phase}_ms"), 3)
    return f"{text} ({min(runs):.3f}-{max(runs):.3f})" if runs and len(runs) > 1 else text


def _ratio(value, reference):
    if not isinstance(value, (int, float)) or not isinstance(reference, (int, float)) or not reference:
        return "-"
    return f"{value / reference:.1f}x"


def _rate(row, phase, peak):
    value = row.get(f"{phase}_tflops")
    if not isinstance(value, (int, float)):
        return "-"
    text = f"{value:.1f}" if value >= 10 else f"{value:.3g}"
    return f"{text} ({100.0 * value / peak:.{0 if value / peak >= 0.01 else 2}f}%)" if peak else text


def markdown(result):
    meta, rows = result["meta"], result["rows"]
    speeder = {r["n"]: r for r in rows if r["model"] == "Speeder"}
    peak = meta.get("peak_tflops")
    lines = [
        f"### Efficiency: {meta['backbone']} on {meta['device_name']}",
        "",
        f"batch {meta['batch']} (micro-batches: training {meta['micro_batch']}, inference "
        f"{meta.get('infer_micro_batch', meta['micro_batch'])}, halved on out-of-memory: see the last column), "
        f"{meta['candidates']} candidates, "
        f"{meta['title_tokens']} title tokens per item, {meta['steps']} timed steps after {meta['warmup']} warm-up"
        + (f", timed {meta['repeat']} times (ms per sample: the median, the fastest-slowest in brackets); "
           if _setting(result, "repeat") > 1 else "; ")
        + f"dtype {meta['dtype']}; optimizer {_setting(result, 'optimizer')}"
        + (f", float32 matrix products at precision {meta['float32_matmul_precision']}"
           if _setting(result, "float32_matmul_precision") != SETTING_DEFAULTS["float32_matmul_precision"] else "")
        + f"; peak memory: {meta['memory_kind']}; random ids, features and weights"
        + (f"; properties set: {', '.join(f'{k}={v}' for k, v in meta['overrides'].items())}."
           if meta.get("overrides") else "."),
        "",
        "TFLOP/s: model FLOPs of the decoder per sample (2 x linear weights x tokens + causal attention "
        "2 x layers x width x L^2 per prompt; training = 2 x linear + 3 x attention, LoRA's frozen weights "
        "need no weight gradient; LM head, norms and activations left out; formula in benchmarks/efficiency_flops.py) "
        "over the measured time"
        + (f", in brackets % of a {peak:g} TFLOP/s peak." if peak else ".")
        + " Tokens: real (unpadded) prompt tokens per sample the decoder sees in training (PPT included).",
        "",
        "| model | n | prompt tokens/sample | train ms/sample | infer ms/sample | train TFLOP/s | infer TFLOP/s | "
        "train tokens/sample | train peak MiB | infer peak MiB | train / Speeder | infer / Speeder | "
        "micro-batch train / infer |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in rows))}
    rows = sorted(rows, key=lambda r: (order[r["model"]], r["n"]))
    for r in rows:
        ref = speeder.get(r["n"], {})
        lines.append(
            f"| {r['model']} | {r['n']} | {_num(r.get('prompt_tokens'), 1)} | {_ms(r, 'train')} | "
            f"{_ms(r, 'infer')} | {_rate(r, 'train', peak)} | {_rate(r, 'infer', peak)} | "
            f"{_num(r.get('train_tokens'), 1)} | {_num(r.get('train_peak_mib'), 0)} | {_num(r.get('infer_peak_mib'), 0)} | "
            f"{_ratio(r.get('train_ms'), ref.get('train_ms'))} | {_ratio(r.get('infer_ms'), ref.get('infer_ms'))} | "
            f"{r.get('train_micro_batch', '-') if r.get('train_ms') is not None else '-'} / {r.get('infer_micro_batch', '-')} |"
        )
    for anchor in ANCHORS:
        by_n = {r["n"]: r for r in rows if r["model"] == anchor}
        ratios = []
        for r in rows:
            if r["model"] in ("Speeder", "Backbone") and r["n"] in by_n:
                ref = by_n[r["n"]]
                ratios.append(f"| {r['model']} | {r['n']} | {_ratio(ref.get('train_ms'), r.get('train_ms'))} | "
                              f"{_ratio(ref.get('infer_ms'), r.get('infer_ms'))} |")
        if ratios:
            lines += ["", f"{anchor}'s time over the model's (how many times faster than {anchor} per sample):", "",
                      "| model | n | training | inference |", "|---|---|---|---|", *ratios]
    return "\n".join(lines) + "\n"


SETTING_KEYS = ("backbone", "device_name", "dtype", "batch", "candidates", "title_tokens", "overrides",
                "float32_matmul_precision", "optimizer")


SETTING_DEFAULTS = {"float32_matmul_precision": "highest", "repeat": 1,  # of runs saved before the setting existed
                    "optimizer": "AdamW"}


def _setting(result, key):
    """A run's setting ``key`` (runs saved before a setting existed had its default)."""
    return result["meta"].get(key, SETTING_DEFAULTS.get(key))


def merge_results(folders):
    """One result from the ``efficiency.json`` of several runs of the same setting (later rows
    of the same model and n replace earlier ones)."""
    merged, rows = None, {}
    for folder in folders:
        path = os.path.join(folder, "efficiency.json")
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError) as err:
            raise SystemExit(f"--replot: cannot read {path}: {err}") from None
        if merged is None:
            merged = result
        else:
            differ = [k for k in SETTING_KEYS if _setting(result, k) != _setting(merged, k)]
            if differ:
                raise SystemExit(f"--replot: {path} was measured with other settings ({', '.join(differ)}).")
        for row in result["rows"]:
            rows[(row["model"], row["n"])] = row
    order = {m: i for i, m in enumerate(MODELS)}
    merged["rows"] = sorted(rows.values(), key=lambda r: (order.get(r["model"], 99), r["n"]))
    return merged


def _write_atomic(path, data, binary=False):
    from recbole_speeder.atomic import atomic_write_bytes, atomic_write_text

    (atomic_write_bytes if binary else atomic_write_text)(path, data)


def plot(result, path):
    """Per-sample training and inference time against history length (paper, Fig. 8), and
    LLaRA's and TMF's time over Speeder's and the bare backbone's (how many times faster they are)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, meta = result["rows"], result["meta"]
    anchors = {a: {r["n"]: r for r in rows if r["model"] == a} for a in ANCHORS}
    anchors = {a: by_n for a, by_n in anchors.items() if by_n}
    fig, axes = plt.subplots(2 if anchors else 1, 2, figsize=(10, 8 if anchors else 4), squeeze=False)
    for col, (key, title) in enumerate((("train_ms", "training"), ("infer_ms", "inference"))):
        ax = axes[0][col]
        for model in dict.fromkeys(r["model"] for r in rows):
            points = sorted((r["n"], r[key]) for r in rows
                            if r["model"] == model and isinstance(r.get(key), (int, float)))
            if points:
                ax.plot(*zip(*points), marker="o", label=model)
        ax.set_xticks(sorted({r["n"] for r in rows}))
        ax.set_xlabel("history length n (items)")
        ax.set_ylabel("ms per sample")
        ax.set_yscale("log")
        ax.set_title(f"{title}, batch {meta['batch']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        if not anchors:
            continue
        ax = axes[1][col]
        for anchor, by_n in anchors.items():
            for color, model in (("C0", "Speeder"), ("C1", "Backbone")):  # a colour per model, a line per anchor
                points = sorted((r["n"], by_n[r["n"]][key] / r[key]) for r in rows
                                if r["model"] == model and r["n"] in by_n
                                and isinstance(r.get(key), (int, float)) and r[key]
                                and isinstance(by_n[r["n"]].get(key), (int, float)))
                if points:
                    label = model if len(anchors) == 1 else f"{model} vs {anchor}"
                    ax.plot(*zip(*points), marker="o", color=color, linestyle="-" if anchor == "LLaRA" else "--",
                            label=label)
                    for n, value in points:
                        ax.annotate(f"{value:.1f}x", (n, value), textcoords="offset points", xytext=(0, 6),
                                    ha="center", fontsize=8)
        ax.set_xticks(sorted({r["n"] for r in rows}))
        ax.set_xlabel("history length n (items)")
        names = " / ".join(anchors)
        ax.set_ylabel(f"{names} time / model time")
        ax.set_title(f"{title}: times faster than {names}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"{meta['backbone']} on {meta['device_name']}: {meta['title_tokens']} title tokens/item, "
                 f"{meta['candidates']} candidates")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    _write_atomic(path, buffer.getvalue(), binary=True)


def write_report(result, out):
    os.makedirs(out, exist_ok=True)
    _write_atomic(os.path.join(out, "efficiency.json"), json.dumps(result, indent=1))
    table = markdown(result)
    _write_atomic(os.path.join(out, "efficiency.md"), table)
    try:
        plot(result, os.path.join(out, "efficiency.png"))
    except ImportError:
        print("matplotlib is not installed: no efficiency.png (redraw with --replot on a machine that has it)")
    return table
