"""Time to extract and cache the frozen item features, cold (empty cache) and warm (cache hit).

    python benchmarks/feature_extraction.py [--seq-epochs N] [--device cpu|cuda|auto] [--datasets ml-100k MMSynth]

Datasets: ml-100k (text + seq; copied from the installed recbole package into a temporary
data home) and, when ``dataset/MMSynth`` exists (``python dataset/prepare.py synthetic
--name MMSynth``), the multimodal sample (text + vision + seq, copied likewise). Prints a
markdown table.
"""

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run_dataset(name, data_home, modalities, args):
    from recbole.data import data_preparation

    from recbole_speeder.config import Config
    from recbole_speeder.features import load_item_features
    from recbole_speeder.quick_start import feature_inputs
    from recbole_speeder.utils import create_dataset

    config_dict = {
        "data_path": data_home, "show_progress": False, "feature_device": args.device,
        "checkpoint_dir": os.path.join(data_home, "saved"), "use_gpu": args.device != "cpu",
    }
    if args.seq_epochs is not None:
        config_dict["seq_encoder_epochs"] = args.seq_epochs
    config = Config(model="SASRec", dataset=name, config_dict=config_dict)
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    rows = []
    for modality in modalities:
        config["modalities"] = [modality]
        times = []
        for _ in range(2):  # cold, then warm
            start = time.perf_counter()
            features = load_item_features(config, dataset, train_data, **feature_inputs(config))
            times.append(time.perf_counter() - start)
        if modality not in features.tensors:
            rows.append((name, modality, "-", "-", "-", "-", "not available"))
            continue
        present = int(features.masks[modality].sum())
        note = f"{config['seq_encoder_epochs']} SASRec epochs on the train split" if modality == "seq" else ""
        rows.append((name, modality, f"{present}/{dataset.item_num - 1}", features.dims[modality],
                     f"{times[0]:.1f}", f"{times[1] * 1000:.0f}", note))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-epochs", type=int, default=None, help="override seq_encoder_epochs")
    parser.add_argument("--device", default="auto", help="feature_device (auto, cpu, cuda)")
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "MMSynth"], help="subset of ml-100k MMSynth")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    home = tempfile.mkdtemp(prefix="speeder-feature-bench-")
    try:
        rows = []
        if "ml-100k" in args.datasets:
            rows += run_dataset("ml-100k", home, ["text", "seq"], args)  # Config copies ml-100k in
        synth = os.path.join(ROOT, "dataset", "MMSynth")
        if "MMSynth" in args.datasets and os.path.isdir(synth):
            shutil.copytree(synth, os.path.join(home, "MMSynth"), ignore=shutil.ignore_patterns("features"))
            rows += run_dataset("MMSynth", home, ["text", "vision", "seq"], args)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"Feature extraction ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads)\n")
    print("| dataset | modality | items with input | dim | cold: extract + cache (s) | warm: cache hit (ms) | note |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
