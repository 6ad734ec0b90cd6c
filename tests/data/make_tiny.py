"""Writes tests/data/tiny/: a small deterministic dataset for the end-to-end tests.

60 users, 40 items in 4 groups; each user walks mostly inside one group, so next-item
signal exists. Run `python tests/data/make_tiny.py` to rewrite the shipped files.
"""

import os

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny")
WORDS = ["red", "green", "blue", "amber"]


def main():
    rng = np.random.default_rng(7)
    os.makedirs(HERE, exist_ok=True)
    rows = []
    for user in range(1, 61):
        group = user % 4
        length = int(rng.integers(8, 16))
        t = 1_600_000_000 + user * 1000
        item = group * 10 + int(rng.integers(0, 10))
        for step in range(length):
            rows.append((f"u{user}", f"i{item + 1}", t + step * 60))
            if rng.random() < 0.8:
                item = group * 10 + (item - group * 10 + 1) % 10
            else:
                item = int(rng.integers(0, 40))
    with open(os.path.join(HERE, "tiny.inter"), "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u, i, t in rows:
            f.write(f"{u}\t{i}\t{t}\n")
    with open(os.path.join(HERE, "tiny.item"), "w") as f:
        f.write("item_id:token\ttitle:token_seq\n")
        for i in range(40):
            f.write(f"i{i + 1}\t{WORDS[i // 10]} thing number {i + 1}\n")


if __name__ == "__main__":
    main()
