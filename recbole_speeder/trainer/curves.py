"""Validation curves of a run, the paper's Figure 5: validation VHR@1, PPT accuracy (of each
question apart under ``ppt_question: curriculum``) and the reconstruction accuracies after every
validation, written beside the run's log file as ``<log>-curves.csv`` and (with matplotlib)
``<log>-curves.png``.

The trainer rewrites both after every training ``fit`` (each MPO stage), so a run that is cut
short still leaves its curves so far. Both files are written atomically.
"""

import csv
import io
import logging
import os

from recbole_speeder.atomic import atomic_file, atomic_write_text

CURVES = ("vhr@1", "ppt_acc", "ppt_acc_order", "ppt_acc_distance", "recon_token_acc", "recon_exact")
LABELS = {"vhr@1": "validation VHR@1", "ppt_acc": "PPT accuracy (training)",
          "ppt_acc_order": "PPT order questions (training)", "ppt_acc_distance": "PPT distance questions (training)",
          "recon_token_acc": "reconstruction token accuracy", "recon_exact": "reconstruction exact titles"}


def run_log_file():
    """The run's log file (RecBole's file handler on the root logger), or None."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def curve_files(log_file):
    """The paths of a run's curves beside ``log_file``: (``<log>-curves.csv``, ``<log>-curves.png``)."""
    stem = os.path.splitext(log_file)[0] + "-curves"
    return stem + ".csv", stem + ".png"


def curve_row(epoch, stage, result):
    """One validation's point: its epoch (counted on across MPO stages), stage and curves."""
    row = {"epoch": epoch, "stage": stage}
    row.update({name: float(result[name]) for name in CURVES if name in result})
    return row


def write_curves(rows, log_file):
    """``<log_file minus .log>-curves.csv`` and ``-curves.png`` from ``rows`` (dicts of
    :func:`curve_row`); returns the paths written (the PNG only when matplotlib imports)."""
    if not rows:
        return []
    csv_path, png_path = curve_files(log_file)
    columns = ["validation", "epoch", "stage"] + [c for c in CURVES if any(c in r for r in rows)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for k, row in enumerate(rows, start=1):
        writer.writerow(dict(row, validation=k))
    atomic_write_text(csv_path, text.getvalue())
    written = [csv_path]
    try:
        import matplotlib
    except ImportError:
        return written
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(1, len(rows) + 1))
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in columns[3:]:
        ax.plot(x, [r.get(name, float("nan")) for r in rows], marker="o", label=LABELS[name])
    for k in range(1, len(rows)):
        if rows[k]["stage"] != rows[k - 1]["stage"]:
            ax.axvline(k + 0.5, color="grey", linestyle=":")
    ax.set_xlabel("validation (stage boundaries dotted)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_file(png_path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return written + [png_path]
