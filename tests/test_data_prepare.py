"""Amazon raw files -> atomic files: both releases, each rule of paper section 3.1, errors."""

import gzip
import json
import os

import numpy as np
import pytest
from PIL import Image

from recbole_speeder.data.prepare import amazon
from recbole_speeder.data.prepare.amazon import build_sessions, clean_title, prepare_amazon, split_sequences
from recbole_speeder.data.prepare.cli import main
from recbole_speeder.errors import DataError

DAY = 86400
BASE = [f"I{k}" for k in range(9)]  # nine items, each in every base session


def _write_lines(path, lines):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")


def _image(path, colour=(200, 30, 30)):
    Image.new("RGB", (8, 8), colour).save(path)


def base_sessions(n=8):
    """n users, one day each, all nine base items in a rotated order (every item: n interactions)."""
    return [(f"U{u}", u, BASE[u % 9:] + BASE[: u % 9]) for u in range(n)]


def make_raw(root, sessions, fmt="2023", titles=None, no_image=(), corrupt=(), extra_review_lines=(),
             extra_meta_lines=(), gz=True):
    """Write reviews, meta and images for ``sessions`` = [(user, day, [items])]; returns paths."""
    root.mkdir(parents=True, exist_ok=True)
    images = root / "images"
    images.mkdir(exist_ok=True)
    items = sorted({i for _, _, seq in sessions for i in seq})
    titles = dict(titles or {})
    reviews = []
    for user, day, seq in sessions:
        for k, item in enumerate(seq):
            second = day * DAY + 3600 + 60 * k
            if fmt == "2023":
                reviews.append({"user_id": user, "parent_asin": item, "asin": item + "-v",
                                "timestamp": second * 1000 + 5, "rating": 5.0})
            else:
                reviews.append({"reviewerID": user, "asin": item, "unixReviewTime": second, "overall": 5.0})
    reviews.reverse()  # raw files are not in time order
    meta = []
    for n, item in enumerate(items):
        title = titles.get(item, f"Title of {item}")
        url = f"https://m.media-amazon.com/images/I/pic{item}._AC_.jpg"
        if fmt == "2023":
            meta.append({"parent_asin": item, "title": title,
                         "images": [{"thumb": url, "large": url, "hi_res": None, "variant": "MAIN"}]})
        else:
            meta.append({"asin": item, "title": title, "imageURLHighRes": [url], "imageURL": [url]})
        if item in no_image:
            continue
        # half the items are found by id, the other half by the basename of their URL
        target = images / (f"{item}.png" if n % 2 == 0 else f"pic{item}._AC_.jpg")
        _image(target, (20 * n % 255, 100, 50))
        if item in corrupt:
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 3])
    ext = ("jsonl" if fmt == "2023" else "json") + (".gz" if gz else "")
    reviews_path, meta_path = root / f"Toy.{ext}", root / f"meta_Toy.{ext}"
    _write_lines(reviews_path, list(extra_review_lines) + reviews)
    _write_lines(meta_path, list(extra_meta_lines) + meta)
    return str(reviews_path), str(meta_path), str(images)


def read_atomic(path):
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return rows[0], rows[1:]


def prepare(tmp_path, raw, logs=None, **kwargs):
    out = tmp_path / "dataset"
    stats = prepare_amazon("Toy", *raw, out_dir=str(out), log=(logs.append if logs is not None else lambda m: None),
                           **kwargs)
    return stats, out / "Toy"


def item_tokens(folder):
    return {row[0] for row in read_atomic(folder / "Toy.item")[1]}


def test_2023_release_parsed_into_atomic_files(tmp_path):
    raw = make_raw(tmp_path / "raw", base_sessions(), "2023")
    stats, folder = prepare(tmp_path, raw)

    header, rows = read_atomic(folder / "Toy.inter")
    assert header == ["session_id:token", "user_id:token", "item_id:token", "timestamp:float"]
    assert len(rows) == 72 and stats["total"] == {"inter": 72, "item": 9, "seq": 8, "user": 8, "avg_seq_len": 9.0}
    # sorted by time inside a session, timestamps from milliseconds to seconds
    u1 = [r for r in rows if r[1] == "U1"]
    assert [r[2] for r in u1] == BASE[1:] + BASE[:1]
    assert u1[0][0] == "U1_0" and float(u1[0][3]) == pytest.approx(DAY + 3600.005)

    header, items = read_atomic(folder / "Toy.item")
    assert header == ["item_id:token", "title:token_seq", "image:token"]
    assert [r[0] for r in items] == BASE and items[0][1] == "Title of I0"
    assert all((folder / "images" / r[2]).is_file() and r[2].startswith(r[0] + ".") for r in items)

    seqs = {}
    for split in ("train", "valid", "test"):
        header, rows = read_atomic(folder / f"Toy.{split}.inter")
        assert header == ["session_id:token", "user_id:token", "item_id_list:token_seq", "item_id:token"]
        seqs.update({r[0]: (r[2].split(" "), r[3]) for r in rows})
        assert stats["splits"][split]["seq"] == len(rows)
    assert [stats["splits"][s]["seq"] for s in ("train", "valid", "test")] == [5, 1, 2]
    assert seqs["U1_0"] == (BASE[1:], BASE[0])  # history = all but the last, target = the last
    assert json.loads((folder / "Toy.stats.json").read_text())["total"]["seq"] == 8


@pytest.mark.parametrize("gz", [True, False])
def test_2018_release_parsed(tmp_path, gz):
    raw = make_raw(tmp_path / "raw", base_sessions(), "2018", gz=gz)
    stats, folder = prepare(tmp_path, raw)
    assert stats["format"] == "2018"
    assert item_tokens(folder) == set(BASE) and stats["total"]["inter"] == 72
    rows = read_atomic(folder / "Toy.inter")[1]
    assert float(rows[0][3]) == 3600.0


def test_2014_python_literal_meta_with_imurl(tmp_path):
    reviews, _, images = make_raw(tmp_path / "raw", base_sessions(), "2018")
    meta = tmp_path / "raw" / "meta_Toy.json"
    lines = []
    for n, item in enumerate(BASE):
        url = f"http://ecx.images-amazon.com/images/I/pic{item}._AC_.jpg"
        lines.append(repr({"asin": item, "title": f"Old {item}", "imUrl": url, "salesRank": {"Automotive": n}}))
    _write_lines(meta, lines)
    stats, folder = prepare(tmp_path, (reviews, str(meta), images))
    assert stats["sources"]["meta"]["malformed_lines"] == 0
    assert read_atomic(folder / "Toy.item")[1][1][1] == "Old I1"


def test_format_is_forced_and_mismatch_reported(tmp_path):
    raw23 = make_raw(tmp_path / "r23", base_sessions(), "2023")
    raw18 = make_raw(tmp_path / "r18", base_sessions(), "2018")
    with pytest.raises(DataError, match="2023 release but .* 2018"):
        prepare(tmp_path, (raw23[0], raw18[1], raw23[2]))
    # a forced 2018 reading of 2023 lines finds no reviewerID: every line is incomplete
    with pytest.raises(DataError, match="No usable interaction"):
        prepare(tmp_path, raw23, fmt="2018")


def test_unknown_release_names_the_file_and_line(tmp_path):
    reviews, meta = tmp_path / "reviews.jsonl", tmp_path / "meta.jsonl"
    _write_lines(reviews, [{"who": "U1", "what": "I1", "when": 1}])
    _write_lines(meta, [{"sku": "I1", "name": "A thing"}])
    with pytest.raises(DataError, match=r"reviews\.jsonl line 1: cannot tell the Amazon Reviews release .*'who'"):
        amazon.read_reviews(str(reviews))
    with pytest.raises(DataError, match=r"meta\.jsonl line 1: cannot tell the Amazon metadata release .*--format"):
        amazon.read_meta(str(meta), {"I1"})


@pytest.mark.parametrize("count,kept", [(7, False), (8, True)])
def test_item_needs_8_interactions(tmp_path, count, kept):
    sessions = [(u, d, seq + ["X"] if i < count else seq) for i, (u, d, seq) in enumerate(base_sessions())]
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions))
    assert ("X" in item_tokens(folder)) is kept
    assert stats["removed"]["rare_items"] == (0 if kept else 1)
    assert stats["total"]["seq"] == 8


@pytest.mark.parametrize("length,kept", [(8, False), (9, True)])
def test_sequence_needs_9_items(tmp_path, length, kept):
    sessions = base_sessions() + [("V", 3, BASE[:length])]
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions))
    assert stats["total"]["seq"] == (9 if kept else 8)
    assert stats["removed"]["short_sequences"] == (0 if kept else 1)
    assert ("V" in {r[1] for r in read_atomic(folder / "Toy.inter")[1]}) is kept


def test_filters_iterate_until_stable(tmp_path):
    """R (7 interactions) goes; then session T falls to 8 items and goes; then Z falls to 7 and goes."""
    sessions = []
    for i, (u, d, seq) in enumerate(base_sessions()):
        extra = (["R"] if i < 6 else []) + (["Z"] if i < 7 else [])
        sessions.append((u, d, seq + extra))
    sessions.append(("T", 20, ["R", "Z"] + BASE[:7]))
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions))
    assert item_tokens(folder) == set(BASE)
    assert stats["removed"]["rare_items"] == 2 and stats["removed"]["short_sequences"] == 1
    assert stats["total"] == {"inter": 72, "item": 9, "seq": 8, "user": 8, "avg_seq_len": 9.0}


def test_consecutive_repeats_count_once(tmp_path):
    sessions = base_sessions()
    sessions[0] = (sessions[0][0], sessions[0][1], [BASE[0], BASE[0]] + BASE[1:])
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions))
    assert stats["removed"]["consecutive_repeats"] == 1
    assert [r[2] for r in read_atomic(folder / "Toy.inter")[1] if r[1] == "U0"] == BASE


@pytest.mark.parametrize("title", ["", "   \t\n ", None])
def test_item_without_title_removed(tmp_path, title):
    sessions = [(u, d, seq + ["X"]) for u, d, seq in base_sessions()]
    titles = {"X": title, "I3": "  Brake\tpad \n 12\" set  &amp; more"}
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions, titles=titles))
    assert "X" not in item_tokens(folder) and stats["removed"]["empty_title"] == 1
    assert dict((r[0], r[1]) for r in read_atomic(folder / "Toy.item")[1])["I3"] == "Brake pad 12'' set & more"


def test_item_without_metadata_removed(tmp_path):
    sessions = [(u, d, seq + ["X"]) for u, d, seq in base_sessions()]
    reviews, meta, images = make_raw(tmp_path / "raw", sessions)
    lines = [line for line in gzip.open(meta, "rt") if '"X"' not in line]
    _write_lines(meta, [line.rstrip("\n") for line in lines])
    stats, folder = prepare(tmp_path, (reviews, meta, images))
    assert "X" not in item_tokens(folder) and stats["removed"]["no_metadata"] == 1


def test_item_without_image_file_removed(tmp_path):
    sessions = [(u, d, seq + ["X"]) for u, d, seq in base_sessions()]
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions, no_image={"X"}))
    assert "X" not in item_tokens(folder) and stats["removed"]["no_image_file"] == 1


def test_corrupt_image_removed_and_named(tmp_path):
    sessions = [(u, d, seq + ["X", "Y"]) for u, d, seq in base_sessions()]
    logs = []
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions, corrupt={"X"}), logs)
    assert item_tokens(folder) == set(BASE) | {"Y"}
    assert stats["removed"]["unusable_image"] == 1
    bad = stats["unusable_images"][0]
    assert bad["item"] == "X" and bad["file"] in ("X.png", "picX._AC_.jpg")
    assert any(bad["file"] in line and "unusable image" in line for line in logs)
    assert not any(name.startswith("X.") for name in os.listdir(folder / "images"))


def test_malformed_lines_counted_and_reported(tmp_path):
    raw = make_raw(tmp_path / "raw", base_sessions(), extra_review_lines=["{broken", "[1, 2]"],
                   extra_meta_lines=["not json at all"])
    logs = []
    stats, _ = prepare(tmp_path, raw, logs)
    reviews = stats["sources"]["reviews"]
    assert reviews["malformed_lines"] == 2 and reviews["first_malformed"] == [1, 2]
    assert stats["sources"]["meta"]["malformed_lines"] == 1
    assert any("2 malformed line(s)" in line and raw[0] in line and "line 1, 2" in line for line in logs)
    assert stats["total"]["inter"] == 72


def test_sessions_are_calendar_days_or_gaps():
    import pandas as pd

    stamps = [10 * 3600, 23 * 3600 + 3000, DAY + 600, DAY + 23 * 3600, 3 * DAY + 3600]
    frame = pd.DataFrame({"user": ["u"] * 5 + ["w"], "item": list("abcdef"), "timestamp": stamps + [10.0]})
    day = build_sessions(frame, 86400, "day")
    assert day["session_id"].tolist() == ["u_0", "u_0", "u_1", "u_1", "u_2", "w_0"]
    gap = build_sessions(frame, 86400, "gap")
    assert gap["session_id"].tolist() == ["u_0", "u_0", "u_0", "u_0", "u_1", "w_0"]
    with pytest.raises(DataError):
        build_sessions(frame, 0, "day")


def test_one_user_two_days_gives_two_sequences(tmp_path):
    sessions = base_sessions() + [("U0", 40, BASE[::-1])]
    stats, folder = prepare(tmp_path, make_raw(tmp_path / "raw", sessions))
    assert stats["total"]["seq"] == 9 and stats["total"]["user"] == 8
    ids = {r[0] for r in read_atomic(folder / "Toy.inter")[1] if r[1] == "U0"}
    assert ids == {"U0_0", "U0_1"}


def test_split_is_7_2_1_and_deterministic():
    ids = [f"s{k}" for k in range(1000)]
    first = split_sequences(ids, 2020)
    assert [sum(v == s for v in first.values()) for s in ("train", "valid", "test")] == [700, 200, 100]
    assert split_sequences(list(reversed(ids)), 2020) == first
    assert split_sequences(ids, 2021) != first
    small = split_sequences(ids[:11], 1)
    assert [sum(v == s for v in small.values()) for s in ("train", "valid", "test")] == [7, 2, 2]


def test_images_hard_linked_or_copied(tmp_path):
    raw = make_raw(tmp_path / "raw", base_sessions())
    _, folder = prepare(tmp_path, raw)
    source = os.stat(os.path.join(raw[2], "I0.png"))
    assert os.stat(folder / "images" / "I0.png").st_ino == source.st_ino
    _, folder = prepare(tmp_path, raw, link_images=False)
    assert os.stat(folder / "images" / "I0.png").st_ino != source.st_ino


def _snapshot(folder):
    return {p: open(os.path.join(root, p), "rb").read()
            for root, _, files in os.walk(folder) for p in files}


def test_failed_run_keeps_previous_dataset(tmp_path, monkeypatch):
    raw = make_raw(tmp_path / "raw", base_sessions())
    _, folder = prepare(tmp_path, raw)
    before = _snapshot(folder)
    out = folder.parent

    with pytest.raises(DataError, match=r"fewer than 50 items \(--min-seq-len\)"):
        prepare(tmp_path, raw, min_seq_len=50)
    with pytest.raises(DataError, match=r"fewer than 9 interactions \(--min-item-inter\)"):
        prepare(tmp_path, raw, min_item_inter=9)

    real_write = amazon._write_text

    def write_then_fail(path, header, rows):
        real_write(path, header, rows)
        if path.endswith(".valid.inter"):
            raise OSError("No space left on device")

    monkeypatch.setattr(amazon, "_write_text", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        prepare(tmp_path, raw, seed=7)
    assert _snapshot(folder) == before
    assert sorted(os.listdir(out)) == ["Toy"]


def test_missing_inputs_name_path_and_command(tmp_path):
    reviews, meta, images = make_raw(tmp_path / "raw", base_sessions())
    missing = str(tmp_path / "nope.jsonl.gz")
    with pytest.raises(DataError, match="python dataset/prepare.py amazon") as err:
        prepare(tmp_path, (missing, meta, images))
    assert missing in str(err.value)
    with pytest.raises(DataError, match="image folder"):
        prepare(tmp_path, (reviews, meta, str(tmp_path / "no_images")))
    assert not (tmp_path / "dataset").exists()


def test_cli_finds_default_raw_files(tmp_path, capsys):
    out = tmp_path / "dataset"
    raw_dir = out / "raw" / "Toy"
    reviews, meta, _ = make_raw(raw_dir, base_sessions(), "2018")
    os.replace(reviews, raw_dir / "reviews_Toy.json.gz")
    assert main(["amazon", "--name", "Toy", "--out", str(out), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "#Inter" in printed and "AvgSL" in printed and "72" in printed
    assert (out / "Toy" / "Toy.train.inter").is_file()

    assert main(["amazon", "--name", "Other", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "Other.jsonl.gz" in error and "reviews_Other.json.gz" in error
    assert str(out / "raw" / "Other" / "images") in error


def test_clean_title():
    assert clean_title("  a\tb\n\nc  ") == "a b c"
    assert clean_title('"Quoted" 5"') == "''Quoted'' 5''"
    assert clean_title(None) == "" and clean_title(3) == ""


def test_ids_with_whitespace_are_incomplete(tmp_path):
    raw = make_raw(tmp_path / "raw", base_sessions(),
                   extra_review_lines=[json.dumps({"user_id": "bad user", "parent_asin": "I0", "timestamp": 1})])
    stats, _ = prepare(tmp_path, raw)
    assert stats["sources"]["reviews"]["incomplete_lines"] == 1
    assert np.isclose(stats["total"]["avg_seq_len"], 9.0)


def test_emptied_by_short_sessions_names_that_rule_and_the_session_options(tmp_path):
    # 40 users x 5 days of 3 items each (1-day sessions far below 9 items), and one 9-item session
    # of items seen once: short sessions remove most, the rare-item rule removes the last rows
    short = [(f"U{u}", 10 * u + d, [f"S{(u + d + k) % 12}" for k in range(3)]) for u in range(40) for d in range(5)]
    raw = make_raw(tmp_path / "raw", short + [("V", 1000, [f"R{k}" for k in range(9)])])
    with pytest.raises(DataError) as err:
        prepare(tmp_path, raw)
    message = str(err.value)
    assert "the rule removing items with fewer than 8 interactions (--min-item-inter) removed the last" in message
    assert "most of the 609 interactions (600) were removed as sequences with fewer than 9 items" in message
    assert "--session-mode day, --session-window 86400" in message and "--session-mode gap" in message
