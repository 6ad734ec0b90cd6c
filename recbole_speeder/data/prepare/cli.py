"""Command line of the dataset preparation (``python dataset/prepare.py ...``).

``amazon``    Amazon Reviews raw files + downloaded images -> ``<out>/<Name>/`` atomic files.
``synthetic`` generate the multimodal sample's raw files into ``<out>/raw/<Name>/`` and
              prepare it like an Amazon category.

Without ``--reviews`` / ``--meta`` / ``--images`` the raw files are looked up in
``<out>/raw/<Name>/`` under the names listed in :data:`RAW_NAMES` (see dataset/README.md).
"""

import argparse
import os
import sys
import time

from recbole_speeder.data.prepare.amazon import FORMATS, SESSION_MODES, prepare_amazon
from recbole_speeder.data.prepare.synthetic import generate_synthetic
from recbole_speeder.errors import DataError, SpeederError

RAW_NAMES = {
    "2023": (["{name}.jsonl.gz", "{name}.jsonl"], ["meta_{name}.jsonl.gz", "meta_{name}.jsonl"]),
    "2018": (["{name}.json.gz", "{name}.json", "reviews_{name}.json.gz", "reviews_{name}.json",
              "{name}_5.json.gz", "reviews_{name}_5.json.gz"],
             ["meta_{name}.json.gz", "meta_{name}.json"]),
}


def find_raw_files(raw_dir, name, fmt="auto"):
    """``(reviews, meta)`` in ``raw_dir`` for ``name``: the first pair of one release that exists."""
    releases = FORMATS[::-1] if fmt == "auto" else (fmt,)
    expected = []
    for release in releases:
        reviews_names, meta_names = RAW_NAMES[release]
        reviews = [os.path.join(raw_dir, n.format(name=name)) for n in reviews_names]
        metas = [os.path.join(raw_dir, n.format(name=name)) for n in meta_names]
        found_reviews = next((p for p in reviews if os.path.isfile(p)), None)
        found_meta = next((p for p in metas if os.path.isfile(p)), None)
        if found_reviews and found_meta:
            return found_reviews, found_meta
        expected.append(f"  {release}: reviews {' or '.join(os.path.basename(p) for p in reviews)}; "
                        f"metadata {' or '.join(os.path.basename(p) for p in metas)}")
    raise DataError(
        f"No Amazon Reviews raw files for '{name}' in {os.path.abspath(raw_dir)}/. Expected\n"
        + "\n".join(expected)
        + f"\nand the downloaded images in {os.path.abspath(os.path.join(raw_dir, 'images'))}/, then run\n"
        f"    python dataset/prepare.py amazon --name {name}\n"
        "or give the paths: --reviews FILE --meta FILE --images DIR."
    )


def _add_rule_options(parser):
    parser.add_argument("--out", default="dataset",
                        help="data home; the dataset is written to OUT/NAME/ (default: dataset)")
    parser.add_argument("--min-item-inter", type=int, default=8,
                        help="remove items with fewer interactions (paper: 8)")
    parser.add_argument("--min-seq-len", type=int, default=9,
                        help="remove sequences with fewer items (paper: 9)")
    parser.add_argument("--session-window", type=float, default=86400,
                        help="session window in seconds (default 86400 = 1 day)")
    parser.add_argument("--session-mode", choices=SESSION_MODES, default="day",
                        help="day: same UTC window floor(t / window) = one session (default); "
                             "gap: new session after a gap longer than the window")
    parser.add_argument("--seed", type=int, default=2020, help="seed of the 7:2:1 split (default 2020)")
    parser.add_argument("--copy-images", action="store_true",
                        help="copy images instead of hard-linking them")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python dataset/prepare.py",
        description="Prepare RecBole atomic files for recbole-speeder (paper section 3.1 rules).")
    commands = parser.add_subparsers(dest="command", required=True)

    amazon = commands.add_parser("amazon", help="Amazon Reviews 2018 / 2023 raw files -> OUT/NAME/")
    amazon.add_argument("--name", required=True, help="dataset name, e.g. Automotive")
    amazon.add_argument("--reviews", help="reviews file (default: looked up in OUT/raw/NAME/)")
    amazon.add_argument("--meta", help="metadata file (default: looked up in OUT/raw/NAME/)")
    amazon.add_argument("--images", help="folder of downloaded images (default: OUT/raw/NAME/images)")
    amazon.add_argument("--raw-dir", help="folder of the raw files (default: OUT/raw/NAME)")
    amazon.add_argument("--format", choices=("auto",) + FORMATS, default="auto",
                        help="Amazon Reviews release (default: detected from the records)")
    _add_rule_options(amazon)

    synthetic = commands.add_parser("synthetic", help="generate the multimodal sample and prepare it")
    synthetic.add_argument("--name", default="MMSynth", help="dataset name (default MMSynth)")
    synthetic.add_argument("--n-items", type=int, default=240)
    synthetic.add_argument("--n-users", type=int, default=700)
    synthetic.add_argument("--defects", action="store_true",
                           help="add broken items (empty titles, missing / corrupt images) and malformed lines")
    _add_rule_options(synthetic)
    return parser


def _rule_kwargs(args):
    return dict(min_item_inter=args.min_item_inter, min_seq_len=args.min_seq_len,
                session_window=args.session_window, session_mode=args.session_mode,
                seed=args.seed, link_images=not args.copy_images)


def run(args):
    """Execute a parsed command; returns the statistics dict."""
    start = time.time()
    if args.command == "synthetic":
        raw_dir = os.path.join(args.out, "raw", args.name)
        paths = generate_synthetic(raw_dir, seed=args.seed, n_items=args.n_items,
                                   n_users=args.n_users, name=args.name, defects=args.defects)
        print(f"generated {os.path.abspath(raw_dir)} in {time.time() - start:.1f}s")
        stats = prepare_amazon(args.name, paths["reviews"], paths["meta"], paths["images"],
                               out_dir=args.out, fmt="2023", **_rule_kwargs(args))
    else:
        raw_dir = args.raw_dir or os.path.join(args.out, "raw", args.name)
        reviews, meta = args.reviews, args.meta
        if reviews is None or meta is None:
            found_reviews, found_meta = find_raw_files(raw_dir, args.name, args.format)
            reviews, meta = reviews or found_reviews, meta or found_meta
        images = args.images or os.path.join(raw_dir, "images")
        stats = prepare_amazon(args.name, reviews, meta, images, out_dir=args.out,
                               fmt=args.format, **_rule_kwargs(args))
    print(f"done in {time.time() - start:.1f}s")
    return stats


def main(argv=None):
    """Entry point; a :class:`SpeederError` is printed and gives exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except SpeederError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
