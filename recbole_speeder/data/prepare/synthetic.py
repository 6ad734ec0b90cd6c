"""A small multimodal sample in the raw Amazon Reviews 2023 format, with real image files.

No package ships item images tied to interactions, so the tests and the demo use this
generator. Every modality carries part of the signal:

* ids: items belong to latent categories; a user prefers two categories, and inside a
  session the next item follows a sparse per-category Markov chain (each item has three
  favourite successors), so id co-occurrence predicts the target;
* titles: brand and noise words plus category words (15% of them taken from another
  category);
* images: 64x64 drawings whose shape and colour encode the category (15% drawn as another
  category), on a jittered background with pixel noise.

Output is byte-identical for the same seed (numpy ``Generator``, gzip ``mtime=0``, fixed
PNG / JPEG encoder options). ``defects=True`` adds the broken cases the preparation must
remove (empty titles, missing and corrupt images, items without metadata, malformed lines);
the default sample is clean.
"""

import gzip
import io
import json
import os

import numpy as np

from recbole_speeder.atomic import atomic_folder

CATEGORY_WORDS = [
    ["brake", "rotor", "caliper", "pad", "disc", "stopping"],
    ["headlight", "bulb", "lamp", "beam", "led", "lighting"],
    ["speaker", "stereo", "radio", "audio", "amplifier", "subwoofer"],
    ["tire", "wheel", "rim", "tread", "valve", "inflator"],
    ["wax", "polish", "shampoo", "cleaner", "microfiber", "detailing"],
    ["wrench", "socket", "jack", "ratchet", "toolkit", "screwdriver"],
    ["seat", "cover", "mat", "cushion", "steering", "interior"],
    ["filter", "spark", "plug", "gasket", "oil", "engine"],
]
BRANDS = ["Acme", "Voltra", "Kestrel", "Norrin", "Pyxis", "Tarvo", "Ulmo", "Brisk",
          "Corvan", "Delto", "Ferro", "Gantry"]
NOISE_WORDS = ["premium", "heavy", "duty", "universal", "black", "pro", "kit", "set",
               "pack", "compact", "durable", "original", "replacement", "classic", "lite",
               "plus", "series", "edition", "deluxe", "value"]
# one colour and one shape per category (the vision signal)
COLOURS = [(200, 40, 40), (240, 200, 30), (40, 90, 210), (40, 40, 40),
           (40, 170, 80), (150, 60, 190), (240, 130, 30), (30, 180, 190)]
SHAPES = ["circle", "square", "triangle", "diamond", "cross", "ring", "stripes", "star"]
_ALPHANUM = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
_DAY = 86400
_EPOCH_2021 = 1609459200  # 2021-01-01T00:00:00Z


def _code(rng, length):
    return "".join(rng.choice(_ALPHANUM, size=length))


def _star(cx, cy, r):
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        angle = np.pi / 2 + k * np.pi / 5
        points.append((cx + radius * np.cos(angle), cy - radius * np.sin(angle)))
    return points


def draw_item_image(rng, category, size=64):
    """A ``size`` x ``size`` RGB drawing: the category's shape in its colour, with noise."""
    from PIL import Image, ImageDraw

    shown = category if rng.random() >= 0.15 else int(rng.integers(len(SHAPES)))
    background = tuple(int(v) for v in 215 + rng.integers(-25, 26, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in COLOURS[shown])
    r = float(rng.uniform(0.25, 0.4) * size)
    cx, cy = (float(v) for v in size / 2 + rng.uniform(-0.12, 0.12, size=2) * size)
    box = [cx - r, cy - r, cx + r, cy + r]
    shape = SHAPES[shown]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=colour)
    elif shape == "cross":
        w = r / 3
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(r / 3)))
    elif shape == "stripes":
        for k in range(4):
            y = cy - r + k * (2 * r / 4)
            draw.rectangle([cx - r, y, cx + r, y + r / 4], fill=colour)
    else:
        draw.polygon(_star(cx, cy, r), fill=colour)
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0.0, 10.0, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _encode(image, fmt):
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, format="PNG", compress_level=6, optimize=False)
    else:
        image.save(buffer, format="JPEG", quality=90, optimize=False, progressive=False, subsampling=2)
    return buffer.getvalue()


def _write_jsonl_gz(path, records):
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                 compresslevel=6) as f:
        for record in records:
            if isinstance(record, str):  # a deliberately malformed line
                f.write((record + "\n").encode("utf-8"))
            else:
                f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))


def _title(rng, category, n_categories):
    words = [BRANDS[rng.integers(len(BRANDS))], NOISE_WORDS[rng.integers(len(NOISE_WORDS))]]
    for _ in range(2):
        source = category if rng.random() >= 0.15 else int(rng.integers(n_categories))
        vocab = CATEGORY_WORDS[source]
        words.append(vocab[rng.integers(len(vocab))])
    words.append(NOISE_WORDS[rng.integers(len(NOISE_WORDS))])
    words.append(f"{_code(rng, 2)}-{int(rng.integers(100, 1000))}")
    return " ".join(words[:2]).capitalize() + " " + " ".join(words[2:])


def generate_synthetic(raw_dir, seed=2020, n_items=240, n_users=700, n_categories=8,
                       name="MMSynth", defects=False):
    """Write ``<name>.jsonl.gz``, ``meta_<name>.jsonl.gz`` and ``images/`` into ``raw_dir``.

    Returns ``{"raw_dir", "reviews", "meta", "images", "defects", "categories"}``: paths, the
    item ids of each broken case (empty unless ``defects``) and each item's latent category.
    The folder is written beside ``raw_dir`` first and then moved into place.
    """
    if not 1 <= n_categories <= len(CATEGORY_WORDS):
        raise ValueError(f"n_categories must be in 1..{len(CATEGORY_WORDS)}")
    rng = np.random.default_rng(seed)
    category = np.arange(n_items) % n_categories
    asins = []
    while len(asins) < n_items:
        asin = "B0" + _code(rng, 8)
        if asin not in asins:
            asins.append(asin)
    members = [np.flatnonzero(category == c) for c in range(n_categories)]
    popularity = rng.uniform(0.5, 1.5, size=n_items)

    # Markov chain inside each category: three favourite successors + a uniform remainder
    successors, successor_p = {}, {}
    for i in range(n_items):
        others = members[category[i]][members[category[i]] != i]
        favourites = rng.choice(others, size=min(3, len(others)), replace=False)
        p = np.full(len(others), 0.2 / len(others))
        for weight, fav in zip((0.4, 0.25, 0.15), favourites):
            p[np.flatnonzero(others == fav)[0]] += weight
        successors[i], successor_p[i] = others, p / p.sum()

    def start_item(c):
        weights = popularity[members[c]]
        return int(rng.choice(members[c], p=weights / weights.sum()))

    reviews = []
    for u in range(n_users):
        user = "A" + _code(rng, 27)
        liked = rng.choice(n_categories, size=min(2, n_categories), replace=False)
        days = np.sort(rng.choice(730, size=int(rng.integers(2, 5)), replace=False))
        for day in days:
            length = int(rng.integers(9, 15)) if rng.random() >= 0.1 else int(rng.integers(4, 9))
            current_category = int(liked[0] if rng.random() < 0.65 else liked[-1])
            item = start_item(current_category)
            second = _EPOCH_2021 + int(day) * _DAY + int(rng.integers(6 * 3600, 12 * 3600))
            for _ in range(length):
                reviews.append({
                    "rating": float(rng.integers(1, 6)),
                    "title": "Review",
                    "text": f"Used the {CATEGORY_WORDS[category[item]][0]}.",
                    "images": [],
                    "asin": asins[item],
                    "parent_asin": asins[item],
                    "user_id": user,
                    "timestamp": second * 1000 + int(rng.integers(1000)),
                    "helpful_vote": 0,
                    "verified_purchase": True,
                })
                second += int(rng.integers(60, 1200))
                if rng.random() < 0.85 or len(liked) == 1:
                    item = int(rng.choice(successors[item], p=successor_p[item]))
                else:
                    current_category = int(liked[1] if current_category == liked[0] else liked[0])
                    item = start_item(current_category)
    order = rng.permutation(len(reviews))  # raw files are not sorted by user or time
    reviews = [reviews[k] for k in order]

    broken = {"empty_title": [], "missing_image": [], "corrupt_image": [], "no_metadata": [],
              "malformed_lines": 0}
    if defects:
        picks = rng.choice(n_items, size=10, replace=False)
        broken["empty_title"] = [asins[k] for k in picks[0:3]]
        broken["missing_image"] = [asins[k] for k in picks[3:6]]
        broken["corrupt_image"] = [asins[k] for k in picks[6:8]]
        broken["no_metadata"] = [asins[k] for k in picks[8:10]]

    with atomic_folder(raw_dir) as tmp_dir:
        image_dir = os.path.join(tmp_dir, "images")
        os.makedirs(image_dir)
        meta = []
        for i, asin in enumerate(asins):
            key = str(int(rng.integers(61, 81))) + _code(rng, 9)
            base = f"https://m.media-amazon.com/images/I/{key}"
            images = [{"thumb": f"{base}._AC_US75_.jpg", "large": f"{base}._AC_.jpg",
                       "variant": "MAIN", "hi_res": f"{base}._AC_SL1500_.jpg"}]
            title = _title(rng, int(category[i]), n_categories)
            picture = draw_item_image(rng, int(category[i]))
            # file names: by URL basename (every 5th item), else <asin>.jpg / <asin>.png
            if i % 5 == 0:
                file_name, fmt = f"{key}._AC_.jpg", "JPEG"
            elif i % 3 == 0:
                file_name, fmt = f"{asin}.jpg", "JPEG"
            else:
                file_name, fmt = f"{asin}.png", "PNG"
            data = _encode(picture, fmt)
            if asin in broken["corrupt_image"]:
                data = data[: len(data) // 2]
            if asin not in broken["missing_image"]:
                with open(os.path.join(image_dir, file_name), "wb") as f:
                    f.write(data)
            if asin in broken["empty_title"]:
                title = "  \t "
            if asin in broken["no_metadata"]:
                continue
            meta.append({"main_category": "Automotive", "title": title, "average_rating": 4.0,
                         "rating_number": 10, "features": [], "description": [], "price": None,
                         "images": images, "videos": [], "store": "Synth",
                         "categories": [], "details": {}, "parent_asin": asin,
                         "bought_together": None})
        review_lines = list(reviews)
        if defects:
            for position, line in ((5, "{not json"), (17, '{"user_id": "A1", "parent_asin": '), (40, "[1, 2]")):
                review_lines.insert(position, line)
            broken["malformed_lines"] = 3
        _write_jsonl_gz(os.path.join(tmp_dir, f"{name}.jsonl.gz"), review_lines)
        _write_jsonl_gz(os.path.join(tmp_dir, f"meta_{name}.jsonl.gz"), meta)
    return {
        "raw_dir": raw_dir,
        "reviews": os.path.join(raw_dir, f"{name}.jsonl.gz"),
        "meta": os.path.join(raw_dir, f"meta_{name}.jsonl.gz"),
        "images": os.path.join(raw_dir, "images"),
        "defects": broken,
        "categories": {asin: int(category[i]) for i, asin in enumerate(asins)},
    }
