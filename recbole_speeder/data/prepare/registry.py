"""Where datasets live in the data home, and what to tell the user when one is missing.

ml-100k is the embedded default: its atomic files ship inside the installed ``recbole``
package and are copied (never committed: GroupLens terms) into ``<data home>/ml-100k/`` on
first use. Every other dataset is prepared by ``python dataset/prepare.py`` (see
``dataset/README.md``).
"""

import difflib
import os
import shutil

from recbole_speeder.atomic import atomic_folder, atomic_write_bytes
from recbole_speeder.errors import DataError

EMBEDDED = {"ml-100k": ("ml-100k.inter", "ml-100k.item")}
AMAZON_CATEGORIES = {
    "Automotive": "Automotive",
    "Home_and_Kitchen": "Home_and_Kitchen",
    "Clothing_Shoes_and_Jewelry": "Clothing_Shoes_and_Jewelry",
}
SPLIT_SUFFIXES = ("train", "valid", "test")


def dataset_dir(data_home, name):
    return os.path.join(data_home, name)


def has_sequence_split(data_home, name):
    """True when the paper's 7:2:1 split files ``<name>.{train,valid,test}.inter`` exist."""
    folder = dataset_dir(data_home, name)
    return all(os.path.isfile(os.path.join(folder, f"{name}.{s}.inter")) for s in SPLIT_SUFFIXES)


def is_prepared(data_home, name):
    folder = dataset_dir(data_home, name)
    return os.path.isfile(os.path.join(folder, f"{name}.inter")) or has_sequence_split(data_home, name)


def embedded_source(name):
    """Folder of an embedded dataset's atomic files inside the installed ``recbole`` package."""
    import recbole

    return os.path.join(os.path.dirname(recbole.__file__), "dataset_example", name)


def _copy_embedded(data_home, name):
    source = embedded_source(name)
    target = dataset_dir(data_home, name)
    if os.path.isdir(target):  # the folder exists (e.g. holds candidate sets) but lacks the atomic files
        for file in EMBEDDED[name]:
            with open(os.path.join(source, file), "rb") as f:
                atomic_write_bytes(os.path.join(target, file), f.read())
        return
    with atomic_folder(target, if_exists="keep") as tmp:  # "keep": a parallel run may be first
        for file in EMBEDDED[name]:
            shutil.copyfile(os.path.join(source, file), os.path.join(tmp, file))


def ensure_dataset_files(data_home, name):
    """Make sure ``<data home>/<name>/`` holds atomic files, or say exactly how to get them."""
    if is_prepared(data_home, name):
        return
    if name in EMBEDDED:
        _copy_embedded(data_home, name)
        return
    folder = os.path.abspath(dataset_dir(data_home, name))
    raw = os.path.abspath(os.path.join(data_home, "raw", name))
    if name in AMAZON_CATEGORIES:
        raise DataError(
            f"Dataset '{name}' is not prepared: {folder} holds no atomic files.\n"
            f"Put the Amazon Reviews files into {raw}/ -- either the 2018 release "
            f"({name}.json.gz and meta_{name}.json.gz) or the 2023 release ({name}.jsonl.gz and "
            f"meta_{name}.jsonl.gz) -- and the downloaded item images into {raw}/images/, then run\n"
            f"    python dataset/prepare.py amazon --name {name}\n"
            "(dataset/README.md lists every option)."
        )
    known = sorted(
        d for d in os.listdir(data_home) if is_prepared(data_home, d)
    ) if os.path.isdir(data_home) else []
    close = difflib.get_close_matches(name, known + list(EMBEDDED) + list(AMAZON_CATEGORIES), n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise DataError(
        f"Unknown dataset '{name}': no atomic files in {folder}.{hint}\n"
        f"Prepared datasets in {os.path.abspath(data_home)}: {', '.join(known) or '(none)'}; "
        f"embedded: {', '.join(EMBEDDED)}.\n"
        "Amazon data: python dataset/prepare.py amazon --name <Category> (see dataset/README.md); "
        "the multimodal sample: python dataset/prepare.py synthetic --name MMSynth."
    )
