"""Amazon Reviews (2014/2018 and 2023 releases) -> RecBole atomic files, with the paper's rules.

Paper section 3.1: interactions are cut into 1-day session windows; the last item of a
session is its target; items with a missing or invalid title or image are removed; items
with fewer than 8 interactions and sequences with fewer than 9 items are removed; the
sequences are split 7:2:1 into train / valid / test.

Choices this module makes where the paper is silent (all documented in dataset/README.md):

* Session window ``day`` (default): a user's interactions that fall in the same UTC
  calendar window ``floor(timestamp / session_window)`` (one calendar day for the default
  86400 s) form one session. ``gap``: a new session starts when two consecutive
  interactions of a user are more than ``session_window`` seconds apart.
* Inside a session, interactions are ordered by timestamp, ties kept in file order.
  An item repeated *consecutively* in a session counts once (the first one is kept); this
  is re-applied after every filtering pass, since removing an item can make two equal
  items adjacent.
* The two thresholds are applied alternately until nothing changes (iterate until stable);
  images are validated (Pillow ``verify`` then ``load``) only for items that survived, and
  if some are unusable the loop runs again.
* Titles: HTML entities decoded, whitespace (tabs, newlines) collapsed to one space,
  stripped; ``"`` becomes ``''`` because RecBole's tab reader takes a field that starts
  with ``"`` for a quoted one.

Everything is written into a temporary folder beside the destination and moved into
place at the end, so a failed run leaves an earlier good preparation untouched.
"""

import ast
import gzip
import html
import json
import os
import re
import shutil
import urllib.parse

import numpy as np
import pandas as pd

from recbole_speeder.atomic import atomic_folder
from recbole_speeder.errors import DataError

FORMATS = ("2018", "2023")
SESSION_MODES = ("day", "gap")
SPLIT_NAMES = ("train", "valid", "test")
SPLIT_RATIOS = (0.7, 0.2, 0.1)
ID_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "JPG", "JPEG", "PNG", "WEBP")
_PIL_FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
_SHOWN_LINES = 5  # line numbers quoted per file in messages


# --------------------------------------------------------------------------- raw reading


class FileReport:
    """What went wrong while reading one raw file: malformed and incomplete lines."""

    def __init__(self, path):
        self.path = path
        self.lines = 0
        self.records = 0
        self.malformed = []  # line numbers that are not a JSON / Python-literal object
        self.incomplete = []  # line numbers lacking a required field (or a bad id / time)

    def as_dict(self):
        return {
            "file": os.path.basename(self.path),
            "lines": self.lines,
            "records": self.records,
            "malformed_lines": len(self.malformed),
            "first_malformed": self.malformed[:_SHOWN_LINES],
            "incomplete_lines": len(self.incomplete),
            "first_incomplete": self.incomplete[:_SHOWN_LINES],
        }

    def summary(self):
        parts = []
        for label, lines in (("malformed", self.malformed), ("incomplete", self.incomplete)):
            if lines:
                shown = ", ".join(map(str, lines[:_SHOWN_LINES]))
                more = ", ..." if len(lines) > _SHOWN_LINES else ""
                parts.append(f"{len(lines)} {label} line(s) skipped in {self.path} (line {shown}{more})")
        return parts


def _open_text(path):
    """Open a raw file as text, gzip-compressed or not (decided by its magic bytes)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, "r", encoding="utf-8", errors="replace")


def _parse_line(line):
    """One record: a JSON object, or the Python-literal dict lines of the 2014 meta dumps."""
    try:
        record = json.loads(line)
    except ValueError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return record if isinstance(record, dict) else None


def iter_records(path, report):
    """Yield ``(line_number, dict)``; malformed lines are counted in ``report`` and skipped."""
    try:
        handle = _open_text(path)
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                report.lines = number
                line = line.strip()
                if not line:
                    continue
                record = _parse_line(line)
                if record is None:
                    report.malformed.append(number)
                    continue
                report.records += 1
                yield number, record
        except (OSError, EOFError) as exc:  # truncated / corrupt gzip stream
            raise DataError(f"Cannot read {path} past line {report.lines}: {exc}") from exc


def _valid_token(value):
    """An id usable as a RecBole token: a non-empty string without whitespace or quotes."""
    if isinstance(value, (int, np.integer)):
        value = str(value)
    if not isinstance(value, str) or not value or value[0] == '"':
        return None
    if any(c.isspace() for c in value):
        return None
    return value


def _resolve_format(fmt, record, detect, where, what, expected):
    """``fmt``, or for ``auto`` the release ``detect`` reads from ``record`` (a DataError if none)."""
    if fmt != "auto":
        return fmt
    detected = detect(record)
    if detected is None:
        raise DataError(f"{where}: cannot tell the Amazon {what} release from the keys {sorted(record)[:8]}; "
                        f"expected {expected}. Use --format to force one.")
    return detected


def _review_format(record):
    if "user_id" in record or "parent_asin" in record or "timestamp" in record:
        return "2023"
    if "reviewerID" in record or "unixReviewTime" in record:
        return "2018"
    return None


def _meta_format(record):
    if "parent_asin" in record or "images" in record:
        return "2023"
    if "asin" in record:
        return "2018"
    return None


def read_reviews(path, fmt="auto"):
    """Read interactions ``(user, item, timestamp in seconds)`` in file order.

    2018 (and 2014): ``reviewerID``, ``asin``, ``unixReviewTime`` (seconds).
    2023: ``user_id``, ``parent_asin`` (falls back to ``asin``), ``timestamp`` (milliseconds).
    Returns ``(DataFrame[user, item, timestamp], format, FileReport)``.
    """
    report = FileReport(path)
    users, items, times = [], [], []
    for number, record in iter_records(path, report):
        fmt = _resolve_format(fmt, record, _review_format, f"{path} line {number}", "Reviews",
                              "reviewerID/asin/unixReviewTime (2018) or user_id/parent_asin/timestamp (2023)")
        if fmt == "2023":
            user = _valid_token(record.get("user_id"))
            item = _valid_token(record.get("parent_asin") or record.get("asin"))
            stamp, scale = record.get("timestamp"), 1000.0
        else:
            user = _valid_token(record.get("reviewerID"))
            item = _valid_token(record.get("asin"))
            stamp, scale = record.get("unixReviewTime"), 1.0
        try:
            seconds = float(stamp) / scale
        except (TypeError, ValueError):
            seconds = float("nan")
        if user is None or item is None or not np.isfinite(seconds):
            report.incomplete.append(number)
            continue
        users.append(user)
        items.append(item)
        times.append(seconds)
    frame = pd.DataFrame({"user": users, "item": items, "timestamp": np.asarray(times, dtype=np.float64)})
    return frame, (fmt if fmt != "auto" else None), report


def _image_urls_2023(images):
    urls = []
    if isinstance(images, list):
        for image in images:
            if isinstance(image, dict):
                urls += [image.get(k) for k in ("hi_res", "large", "thumb")]
            elif isinstance(image, str):
                urls.append(image)
    return [u for u in urls if isinstance(u, str) and u]


def _image_urls_2018(record):
    urls = []
    for key in ("imageURLHighRes", "imageURL", "imUrl"):
        value = record.get(key)
        urls += value if isinstance(value, list) else [value]
    return [u for u in urls if isinstance(u, str) and u]


def read_meta(path, wanted_items, fmt="auto"):
    """Read ``{item: (raw title or None, [image urls])}`` for the items in ``wanted_items``.

    2018: ``asin``, ``title``, ``imageURLHighRes`` / ``imageURL`` (lists), ``imUrl`` (2014).
    2023: ``parent_asin``, ``title``, ``images`` (list of dicts with hi_res / large / thumb).
    The first record of an item wins (the 2018 dumps repeat some items).
    """
    report = FileReport(path)
    meta = {}
    for number, record in iter_records(path, report):
        fmt = _resolve_format(fmt, record, _meta_format, f"{path} line {number}", "metadata",
                              "asin/title/imageURL (2018) or parent_asin/title/images (2023)")
        if fmt == "2023":
            item = _valid_token(record.get("parent_asin") or record.get("asin"))
            urls = _image_urls_2023(record.get("images"))
        else:
            item = _valid_token(record.get("asin"))
            urls = _image_urls_2018(record)
        if item is None:
            report.incomplete.append(number)
            continue
        if item in wanted_items and item not in meta:
            title = record.get("title")
            meta[item] = (title if isinstance(title, str) else None, urls)
    return meta, (fmt if fmt != "auto" else None), report


def clean_title(raw):
    """Title as written to the atomic file: one line, single spaces, no tabs, no leading quote."""
    if not isinstance(raw, str):
        return ""
    text = html.unescape(raw).replace('"', "''")
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------- images


def list_image_folder(images_dir):
    """Names of the plain files directly inside ``images_dir``."""
    with os.scandir(images_dir) as entries:
        return {e.name for e in entries if e.is_file()}


def resolve_image(item, urls, available):
    """File name for ``item`` in the image folder: ``<item>.<ext>`` first, then URL basenames."""
    for ext in ID_IMAGE_EXTENSIONS:
        name = f"{item}.{ext}"
        if name in available:
            return name
    for url in urls:
        name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
        if name and name in available:
            return name
    return None


def check_image(path):
    """``(extension, None)`` if Pillow can verify *and* fully decode the file, else ``(None, why)``."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            fmt = image.format or ""
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError...)
        return None, f"{type(exc).__name__}: {exc}"
    return _PIL_FORMAT_EXT.get(fmt, fmt.lower() or "img"), None


def _place_image(source, destination, link):
    if link:
        try:
            os.link(source, destination)
            return
        except OSError:
            pass
    shutil.copyfile(source, destination)


# --------------------------------------------------------------------------- sessions + filters


def build_sessions(frame, session_window=86400, session_mode="day"):
    """Sort by user then time and number the sessions (paper: 1-day session windows).

    Adds ``session`` (a global running number) and ``session_id`` (``<user>_<k>``, the k-th
    session of that user, counted before any filtering).
    """
    if session_mode not in SESSION_MODES:
        raise DataError(f"Unknown session mode '{session_mode}'; choose one of {', '.join(SESSION_MODES)}.")
    if not session_window or session_window <= 0:
        raise DataError(f"session_window must be a positive number of seconds, got {session_window}.")
    frame = frame.assign(order=np.arange(len(frame)))
    frame = frame.sort_values(["user", "timestamp", "order"], kind="mergesort").reset_index(drop=True)
    new_user = frame["user"].ne(frame["user"].shift())
    if session_mode == "day":
        bucket = np.floor(frame["timestamp"].to_numpy() / session_window)
        new_window = pd.Series(bucket).ne(pd.Series(bucket).shift()).to_numpy()
    else:
        new_window = frame["timestamp"].diff().gt(session_window).to_numpy()
    starts = new_user.to_numpy() | new_window
    frame["session"] = np.cumsum(starts) - 1
    ordinal = pd.Series(starts.astype(np.int64)).groupby(frame["user"]).cumsum() - 1
    frame["session_id"] = frame["user"] + "_" + ordinal.astype(str)
    return frame.drop(columns="order")


def _drop_consecutive_repeats(frame):
    same = frame["session"].eq(frame["session"].shift()) & frame["item"].eq(frame["item"].shift())
    return frame[~same.to_numpy()], int(same.sum())


class _Emptied(Exception):
    pass


def _drop_small_groups(frame, column, minimum, removed, counter, rule, rows=None):
    """The rows whose ``column`` value has fewer than ``minimum`` rows dropped; the dropped values
    counted in ``removed[counter]`` (and the dropped rows in ``rows[counter]``). Raises
    :class:`_Emptied` with ``rule`` if nothing is left."""
    small = frame.groupby(column)["item"].transform("size") < minimum
    removed[counter] += int(frame.loc[small, column].nunique())
    if rows is not None:
        rows[counter] = rows.get(counter, 0) + int(small.sum())
    frame = frame[~small.to_numpy()]
    if frame.empty:
        raise _Emptied(rule)
    return frame


def filter_until_stable(frame, min_item_inter, min_seq_len, removed, rows=None):
    """Apply the paper's two thresholds alternately until nothing changes.

    Removes items with fewer than ``min_item_inter`` interactions and sessions with fewer than
    ``min_seq_len`` items (after dropping consecutive repeats). Counts go into ``removed`` (and
    the interactions each rule removed into ``rows``). Raises :class:`_Emptied` naming the rule
    that removed the last row.
    """
    rows = {} if rows is None else rows
    while True:
        before = len(frame)
        frame, repeats = _drop_consecutive_repeats(frame)
        removed["consecutive_repeats"] += repeats
        rows["consecutive_repeats"] = rows.get("consecutive_repeats", 0) + repeats
        frame = _drop_small_groups(frame, "session", min_seq_len, removed, "short_sequences",
                                   f"sequences with fewer than {min_seq_len} items (--min-seq-len)", rows)
        frame = _drop_small_groups(frame, "item", min_item_inter, removed, "rare_items",
                                   f"items with fewer than {min_item_inter} interactions (--min-item-inter)", rows)
        if len(frame) == before:
            return frame


def _emptied_message(name, emptied, rows, total, removed, min_item_inter, min_seq_len, session_window, session_mode):
    """Why nothing is left: the rule that removed the most interactions, and what to change."""
    rules = {
        "short_sequences": f"sequences with fewer than {min_seq_len} items (--min-seq-len)",
        "rare_items": f"items with fewer than {min_item_inter} interactions (--min-item-inter)",
        "consecutive_repeats": "consecutive repeats of an item in a session",
        "unusable_image": "items whose image Pillow cannot open",
    }
    most = max(rows, key=rows.get) if rows and max(rows.values()) > 0 else None
    message = f"Nothing is left of {name}: the rule removing {emptied} removed the last interactions"
    if most is not None:
        message += f"; most of the {total} interactions ({rows[most]}) were removed as {rules.get(most, most)}"
    if most == "short_sequences":
        window = f"{session_window:g} s"
        kind = "calendar windows" if session_mode == "day" else "runs without a gap longer than"
        message += (f". Sessions are {kind} {window} (--session-mode {session_mode}, --session-window "
                    f"{session_window:g}); a longer --session-window, --session-mode gap or a lower --min-seq-len "
                    "makes longer sequences")
    else:
        message += ". Lower --min-item-inter / --min-seq-len or check the raw files"
    return message + f" (removed: {removed})."


def split_sequences(session_ids, seed, ratios=SPLIT_RATIOS):
    """Random 7:2:1 split of sequences: ``{session_id: split name}``, deterministic in ``seed``.

    Train gets ``floor(0.7 n)``, valid ``floor(0.2 n)``, test the rest.
    """
    ordered = sorted(session_ids)
    permutation = np.random.default_rng(seed).permutation(len(ordered))
    n_train = int(len(ordered) * ratios[0])
    n_valid = int(len(ordered) * ratios[1])
    assignment = {}
    for rank, index in enumerate(permutation):
        split = "train" if rank < n_train else "valid" if rank < n_train + n_valid else "test"
        assignment[ordered[index]] = split
    return assignment


# --------------------------------------------------------------------------- writing


def _format_time(seconds):
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def _write_text(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def _missing_input(kind, path, name):
    return DataError(
        f"The {kind} {path} does not exist.\n"
        f"Put it there (see dataset/README.md) or point to it, e.g.\n"
        f"    python dataset/prepare.py amazon --name {name} --reviews <reviews file> "
        f"--meta <meta file> --images <image folder>"
    )


def _print_table(stats, log):
    total, splits = stats["total"], stats["splits"]
    log(f"{'':8}{'#Inter':>10}{'#Item':>8}{'#Seq':>8}{'AvgSL':>8}")
    log(f"{'all':8}{total['inter']:>10}{total['item']:>8}{total['seq']:>8}{total['avg_seq_len']:>8.2f}")
    for split in SPLIT_NAMES:
        s = splits[split]
        log(f"{split:8}{s['inter']:>10}{s['item']:>8}{s['seq']:>8}{s['avg_seq_len']:>8.2f}")


def _table_row(frame):
    seqs = int(frame["session"].nunique())
    return {
        "inter": int(len(frame)),
        "item": int(frame["item"].nunique()),
        "seq": seqs,
        "user": int(frame["user"].nunique()),
        "avg_seq_len": round(len(frame) / seqs, 4) if seqs else 0.0,
    }


def _usable_candidates(wanted, metadata, available, removed):
    """Items with metadata, a non-empty title and an image file: ``({item: title}, {item: file})``."""
    titles, image_files = {}, {}
    for item in sorted(wanted):
        if item not in metadata:
            removed["no_metadata"] += 1
            continue
        raw_title, urls = metadata[item]
        title = clean_title(raw_title)
        if not title:
            removed["empty_title"] += 1
            continue
        found = resolve_image(item, urls, available)
        if found is None:
            removed["no_image_file"] += 1
            continue
        titles[item], image_files[item] = title, found
    return titles, image_files


def _apply_rules(frame, images, image_files, min_item_inter, min_seq_len, removed, log, rows=None):
    """Thresholds until stable, then image validation of the survivors; repeat while images fail.

    Returns ``(frame, {item: extension}, [unusable image records])``; the interactions each rule
    removed are counted in ``rows``.
    """
    extensions, unusable = {}, []
    rows = {} if rows is None else rows
    while True:
        frame = filter_until_stable(frame, min_item_inter, min_seq_len, removed, rows)
        bad = []
        for item in frame["item"].unique():
            if item in extensions:
                continue
            path = os.path.join(images, image_files[item])
            extensions[item], error = check_image(path)
            if error is not None:
                bad.append(item)
                unusable.append({"item": item, "file": image_files[item], "error": error})
                log(f"unusable image {path}: {error}")
        if not bad:
            return frame, extensions, unusable
        removed["unusable_image"] += len(bad)
        unusable_rows = frame["item"].isin(bad)
        rows["unusable_image"] = rows.get("unusable_image", 0) + int(unusable_rows.sum())
        frame = frame[~unusable_rows.to_numpy()]
        if frame.empty:
            raise _Emptied("items whose image file Pillow cannot open and load")


def _write_dataset(folder, name, frame, titles, image_sources, extensions, stats, link_images):
    """Write every atomic file, the images and the statistics into ``folder``."""
    items = sorted(frame["item"].unique())
    image_dir = os.path.join(folder, "images")
    os.makedirs(image_dir)
    image_names = {item: f"{item}.{extensions[item]}" for item in items}
    for item in items:
        _place_image(image_sources[item], os.path.join(image_dir, image_names[item]), link_images)
    _write_text(
        os.path.join(folder, f"{name}.item"),
        ["item_id:token", "title:token_seq", "image:token"],
        ([item, titles[item], image_names[item]] for item in items),
    )
    _write_text(
        os.path.join(folder, f"{name}.inter"),
        ["session_id:token", "user_id:token", "item_id:token", "timestamp:float"],
        zip(frame["session_id"], frame["user"], frame["item"], map(_format_time, frame["timestamp"])),
    )
    grouped = frame.groupby("session", sort=True).agg(
        session_id=("session_id", "first"), user=("user", "first"),
        items=("item", list), split=("split", "first"))
    sequences = list(zip(grouped["session_id"], grouped["user"], grouped["items"], grouped["split"]))
    for split in SPLIT_NAMES:
        # history = every item of the sequence but the last; target = the last (paper 3.1)
        _write_text(
            os.path.join(folder, f"{name}.{split}.inter"),
            ["session_id:token", "user_id:token", "item_id_list:token_seq", "item_id:token"],
            ([sid, user, " ".join(seq[:-1]), seq[-1]] for sid, user, seq, s in sequences if s == split),
        )
    with open(os.path.join(folder, f"{name}.stats.json"), "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=2, sort_keys=True)
        f.write("\n")


def prepare_amazon(
    name,
    reviews,
    meta,
    images,
    out_dir="dataset",
    fmt="auto",
    min_item_inter=8,
    min_seq_len=9,
    session_window=86400,
    session_mode="day",
    seed=2020,
    link_images=True,
    log=print,
):
    """Prepare ``<out_dir>/<name>/`` from Amazon raw files and an image folder.

    Writes ``<name>.inter``, ``<name>.item``, ``<name>.{train,valid,test}.inter``,
    ``<name>.stats.json`` and ``images/<item>.<ext>``; returns the statistics dict (the one
    saved in ``<name>.stats.json``). Raises :class:`DataError` for missing inputs and when a
    rule removes everything.
    """
    if fmt not in ("auto",) + FORMATS:
        raise DataError(f"Unknown format '{fmt}'; choose auto, 2018 or 2023.")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise DataError(f"Dataset name '{name}' must be letters, digits, '_', '.', '-'.")
    for kind, path in (("reviews file", reviews), ("metadata file", meta)):
        if not os.path.isfile(path):
            raise _missing_input(kind, path, name)
    if not os.path.isdir(images):
        raise _missing_input("image folder", images, name)

    removed = {key: 0 for key in (
        "no_metadata", "empty_title", "no_image_file", "unusable_image",
        "consecutive_repeats", "short_sequences", "rare_items")}
    interactions, review_fmt, review_report = read_reviews(reviews, fmt)
    for line in review_report.summary():
        log(line)
    if interactions.empty:
        raise DataError(f"No usable interaction in {reviews} ({review_report.lines} lines read).")
    wanted = set(interactions["item"].unique())
    metadata, meta_fmt, meta_report = read_meta(meta, wanted, fmt)
    for line in meta_report.summary():
        log(line)
    if fmt == "auto" and review_fmt and meta_fmt and review_fmt != meta_fmt:
        raise DataError(
            f"{reviews} looks like the {review_fmt} release but {meta} like the {meta_fmt} one; "
            "their item ids do not match. Use files of one release."
        )
    log(f"read {len(interactions)} interactions of {len(wanted)} items "
        f"({review_fmt or fmt} format), metadata for {len(metadata)} of them")

    titles, image_files = _usable_candidates(wanted, metadata, list_image_folder(images), removed)
    frame = interactions[interactions["item"].isin(titles)]
    if frame.empty:
        raise DataError(
            f"Nothing is left of {name}: every item lacks metadata, a title or an image file "
            f"({removed}); check {meta} and {images}.")
    frame = build_sessions(frame, session_window, session_mode)
    rows, total = {}, len(frame)
    try:
        frame, extensions, unusable = _apply_rules(
            frame, images, image_files, min_item_inter, min_seq_len, removed, log, rows)
    except _Emptied as emptied:
        raise DataError(_emptied_message(name, emptied, rows, total, removed, min_item_inter, min_seq_len,
                                         session_window, session_mode)) from None

    splits = split_sequences(frame["session_id"].unique(), seed)
    frame = frame.assign(split=frame["session_id"].map(splits))
    stats = {
        "name": name,
        "format": review_fmt or fmt,
        "sources": {"reviews": review_report.as_dict(), "meta": meta_report.as_dict(),
                    "images": os.path.basename(os.path.normpath(images))},
        "rules": {"min_item_inter": min_item_inter, "min_seq_len": min_seq_len,
                  "session_window": session_window, "session_mode": session_mode,
                  "split_seed": seed, "split_ratios": list(SPLIT_RATIOS)},
        "removed": removed,
        "unusable_images": unusable[:100],
        "total": _table_row(frame),
        "splits": {s: _table_row(frame[frame["split"] == s]) for s in SPLIT_NAMES},
    }

    final_dir = os.path.join(out_dir, name)
    with atomic_folder(final_dir) as tmp_dir:
        sources = {item: os.path.join(images, f) for item, f in image_files.items()}
        _write_dataset(tmp_dir, name, frame, titles, sources, extensions, stats, link_images)

    if any(removed.values()):
        log("removed: " + ", ".join(f"{k}={v}" for k, v in removed.items()))
    _print_table(stats, log)
    log(f"wrote {os.path.abspath(final_dir)}")
    return stats
