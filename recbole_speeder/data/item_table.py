"""The dataset's ``<name>.item`` file: titles and image file names per item token.

RecBole loads only the item columns a model's ``load_col`` asks for; titles and image names
are side information the plugin reads itself, as strings, straight from the atomic file.
"""

import logging
import os

import pandas as pd

from recbole_speeder.errors import DataError

logger = logging.getLogger(__name__)


def read_item_table(config):
    """(DataFrame of strings with empty cells as "", path), or (None, path) without the file.

    Reads ``data_path``, ``dataset``, ``field_separator`` and ``encoding`` from ``config``;
    column names lose their ``:type`` suffix.
    """
    path = os.path.join(config["data_path"], f"{config['dataset']}.item")
    if not os.path.isfile(path):
        return None, path
    try:
        table = pd.read_csv(
            path, sep=config["field_separator"], dtype=str, keep_default_na=False,
            encoding=config["encoding"], engine="python",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(f"Cannot read item file {path}: {err}") from None
    table.columns = [str(c).split(":")[0] for c in table.columns]
    return table, path


def item_column(table, path, field_name, key):
    """Column ``field_name`` of the item table, or a DataError naming the config ``key``."""
    if field_name not in table.columns:
        raise DataError(
            f"Item file {path} has no column '{field_name}' (config key {key}); its columns are "
            f"{', '.join(table.columns)}."
        )
    return table[field_name]


def image_paths(config, table, path):
    """Full image paths per item-table row (None where no file is named), or None if the
    dataset has no images (no ``IMAGE_FIELD`` column or no ``image_dir`` folder)."""
    image_field = config["IMAGE_FIELD"]
    image_dir = os.path.join(config["data_path"], config["image_dir"])
    if image_field not in table.columns:
        logger.info(f"vision features: {path} has no '{image_field}' column (IMAGE_FIELD); no vision modality.")
        return None
    if not os.path.isdir(image_dir):
        logger.info(f"vision features: no image folder {image_dir} (image_dir); no vision modality.")
        return None
    names = table[image_field].str.strip().tolist()
    return [os.path.join(image_dir, n) if n else None for n in names]


def item_titles(config, dataset):
    """Title of every RecBole internal item id (index 0 = [PAD] -> ""), from ``<name>.item``.

    Items without a title (or absent from the file) are called ``item <token>`` (counted in
    a warning) so that every candidate can still be named.
    """
    table, path = read_item_table(config)
    if table is None:
        raise DataError(f"Item file {path} is missing: title prompts need the item titles (TITLE_FIELD).")
    id_field, title_field = config["ITEM_ID_FIELD"], config["TITLE_FIELD"]
    item_column(table, path, id_field, "ITEM_ID_FIELD")
    item_column(table, path, title_field, "TITLE_FIELD")
    table = table.drop_duplicates(subset=id_field, keep="first")
    by_token = dict(zip(table[id_field].tolist(), table[title_field].str.strip().tolist()))
    tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field]]
    titles, missing = [""], 0
    for token in tokens[1:]:
        title = by_token.get(token, "")
        if not title:
            missing += 1
            title = f"item {token}"
        titles.append(title)
    if missing:
        logger.warning(f"{missing} of {len(tokens) - 1} items have no title in {path}; they are shown as 'item <token>'.")
    return titles
