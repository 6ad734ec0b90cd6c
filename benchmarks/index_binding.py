"""Can a backbone name a candidate by its label? A zero-shot probe of Speeder's answer format.

    python benchmarks/index_binding.py                       # SmolLM2 (the default backbone), CPU is fine
    python benchmarks/index_binding.py --labels titles       # the title baselines' answer instead
    python benchmarks/index_binding.py --llm_path meta-llama/Llama-2-7b-hf --device cuda

Speeder answers with one token, the label of the chosen candidate (paper section 2.4,
t_out = 1), so the LLM has to tie each label to the item written after it. This probe asks the
backbone, with no training and with the items written as their titles, a question whose answer
stands in the prompt: which candidate is the same item as the last one of the history. The
answer is scored the way Speeder scores (constrained: the label token with the highest logit at
the answer position, :func:`~recbole_speeder.llm.decoding.answer_logits`), once per label scheme
(``digits`` 1..C, ``letters`` A..). Accuracy near 1/C means the backbone does not tie labels to
items by itself, so Speeder's fine-tuning has to teach it before the item vectors can matter
(README "Results": on ml-100k with SmolLM2-135M that happens late, and not for every seed).
The ``titles`` scheme asks the same question for the candidate's title instead, scored the way
LLaRA and TALLRec score constrained answers (mean log-probability of each candidate's title
tokens and end of sequence, :func:`~recbole_speeder.llm.answers.title_scores`): the
answer a title baseline learns, which the backbone can copy from the prompt.

Titles come from a RecBole ``.item`` file (``--item-file``, default: the ml-100k file inside the
installed ``recbole`` package) and its ``--title-field`` column. Cases are drawn with ``--seed``:
``--history`` distinct titles, then ``--candidates`` - 1 other titles and the last history title
at a random position. Prints a markdown table.
"""

import argparse
import os
import random
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from recbole_speeder.errors import ConfigError, DataError  # noqa: E402

TEMPLATE = ("Here is a list of movies, oldest first: {history}. Which of these candidates is the same "
            "movie as the last one in the list? {candidates}. Answer with the {kind} of one candidate only.")
SCHEMES = ("digits", "letters", "titles")


def embedded_item_file():
    """The ml-100k ``.item`` file shipped inside the installed ``recbole`` package."""
    from recbole_speeder.data.prepare.registry import embedded_source

    return os.path.join(embedded_source("ml-100k"), "ml-100k.item")


def read_titles(item_file, title_field):
    """Distinct non-empty titles of a RecBole ``.item`` file (its ``title_field`` column)."""
    from recbole_speeder.data.item_table import read_item_table

    folder, name = os.path.split(os.path.abspath(item_file))
    if not name.endswith(".item"):
        raise DataError(f"--item-file {item_file}: not a RecBole .item file (<name>.item)")
    table, _ = read_item_table({"data_path": folder, "dataset": name[:-len(".item")],
                                "field_separator": "\t", "encoding": "utf-8"})
    if table is None:
        raise DataError(f"--item-file {item_file}: no such file")
    if title_field not in table.columns:
        raise DataError(f"{item_file}: no column '{title_field}' (columns: {', '.join(table.columns)}); "
                        f"set --title-field")
    return sorted({t.strip() for t in table[title_field] if t.strip()})


def make_case(titles, rng, history, candidates):
    """(history titles, candidate titles, 0-based index of the candidate that repeats the last
    history title). All titles of a case are distinct."""
    if history < 1 or candidates < 2:
        raise ConfigError(f"--history must be >= 1 and --candidates >= 2 (got {history}, {candidates})")
    needed = history + candidates - 1
    if len(titles) < needed:
        raise DataError(f"a case needs {needed} distinct titles; the item file has {len(titles)}")
    drawn = rng.sample(titles, needed)
    past, others = drawn[:history], drawn[history:]
    answer = rng.randrange(candidates)
    return past, others[:answer] + [past[-1]] + others[answer:], answer


def case_text(past, shown, labels, kind=None):
    """The probe question for one case, history numbered 1..n as in Speeder's default prompt;
    ``kind`` names the answer asked for (default: number or letter, after the labels)."""
    kind = kind or ("number" if labels[0].isdigit() else "letter")
    history = ", ".join(f"{i}: {t}" for i, t in enumerate(past, 1))
    candidates = ", ".join(f"{label}: {t}" for label, t in zip(labels, shown))
    return TEMPLATE.format(history=history, candidates=candidates, kind=kind)


@torch.no_grad()
def probe(model, tokenizer, titles, scheme="digits", cases=200, history=5, candidates=5, seed=0,
          use_chat_template=True, batch_size=16):
    """(share of ``cases`` answered right, share of the candidate position chosen most often),
    scored on the label tokens only (constrained), or with ``scheme='titles'`` on each
    candidate's title (:func:`title_answer_scores`). A backbone that ignores the items picks
    about 1/C right, often by naming one label nearly every time."""
    from recbole_speeder.llm.decoding import answer_logits
    from recbole_speeder.prompts.hybrid import HybridPrompt

    if scheme not in SCHEMES:
        raise ConfigError(f"label scheme '{scheme}' is not one of {', '.join(SCHEMES)}")
    by_title = scheme == "titles"
    prompt = HybridPrompt(tokenizer, use_chat_template=use_chat_template,
                          candidate_labels="digits" if by_title else scheme)
    labels = prompt.candidate_labels(candidates)
    label_ids = prompt.label_token_ids(candidates)
    rng = random.Random(seed)
    drawn = [make_case(titles, rng, history, candidates) for _ in range(cases)]
    texts = [case_text(past, shown, labels, "title" if by_title else None) for past, shown, _ in drawn]
    if prompt.use_chat_template:
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": t}], tokenize=False,
                                               add_generation_prompt=True) for t in texts]
    device = next(model.parameters()).device
    correct, chosen = 0, torch.zeros(candidates, dtype=torch.long)
    for start in range(0, cases, batch_size):
        if by_title:
            scores = title_answer_scores(model, tokenizer, texts[start:start + batch_size],
                                         [shown for _, shown, _ in drawn[start:start + batch_size]],
                                         not prompt.use_chat_template)
        else:
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=not prompt.use_chat_template).to(device)
            embeds = model.get_input_embeddings()(batch.input_ids)
            scores = answer_logits(model, embeds, batch.attention_mask, label_ids.to(device))
        truth = torch.tensor([a for _, _, a in drawn[start:start + batch_size]], device=device)
        picks = scores.argmax(dim=1)
        correct += int((picks == truth).sum())
        chosen += torch.bincount(picks.cpu(), minlength=candidates)
    return correct / cases, int(chosen.max()) / cases


def title_answer_scores(model, tokenizer, texts, candidate_titles, add_special_tokens):
    """Scores [B, C]: mean log-probability of each candidate's title + end of sequence after
    its case's prompt, as LLaRA and TALLRec score constrained answers (one row per pair)."""
    from recbole_speeder.prompts.base import left_pad
    from recbole_speeder.llm.answers import IGNORE, title_scores

    eos = tokenizer.eos_token_id
    rows, answers = [], []
    for text, shown in zip(texts, candidate_titles):
        prompt_ids = tokenizer(text, add_special_tokens=add_special_tokens).input_ids
        for title in shown:
            answer = tokenizer(title, add_special_tokens=False).input_ids + [eos]
            rows.append(prompt_ids + answer)
            answers.append(len(answer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    input_ids, mask, _ = left_pad(rows, pad)
    labels = torch.full(input_ids.shape, IGNORE, dtype=torch.long)
    for b, n in enumerate(answers):
        labels[b, -n:] = torch.from_numpy(input_ids[b, -n:])
    device = next(model.parameters()).device
    embeds = model.get_input_embeddings()(torch.from_numpy(input_ids).to(device))
    return title_scores(model, embeds, torch.from_numpy(mask).to(device), labels.to(device),
                        len(candidate_titles[0]))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm_path", default="default", help="as the models' llm_path (default: SmolLM2)")
    parser.add_argument("--item-file", default=None, help="RecBole .item file (default: recbole's ml-100k)")
    parser.add_argument("--title-field", default="movie_title")
    parser.add_argument("--labels", default="digits,letters",
                        help="comma list of: " + ", ".join(SCHEMES) + " (titles score C rows a case: slower)")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--history", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-chat-template", action="store_true", help="plain prompt, no chat turn")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when present)")
    return parser.parse_args(argv)


def main(argv=None, model=None, tokenizer=None):
    """Run the probe and print the table; ``model``/``tokenizer`` skip loading ``--llm_path``."""
    args = parse_args(argv)
    try:
        schemes = [s.strip() for s in args.labels.split(",") if s.strip()]
        unknown = [s for s in schemes if s not in SCHEMES]
        if unknown or not schemes:
            raise ConfigError(f"--labels {args.labels!r}: use a comma list of {', '.join(SCHEMES)}")
        if args.cases < 1:
            raise ConfigError(f"--cases must be >= 1 (got {args.cases})")
        titles = read_titles(args.item_file or embedded_item_file(), args.title_field)
        if model is None:
            from recbole_speeder.llm.backbone import load_backbone

            model, tokenizer = load_backbone(args.llm_path, device=args.device)
        model.eval()
        rows = []
        for scheme in schemes:
            accuracy, top_share = probe(model, tokenizer, titles, scheme, args.cases, args.history, args.candidates,
                             args.seed, not args.no_chat_template, args.batch)
            rows.append((scheme, accuracy, top_share))
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Backbone {args.llm_path}: which of {args.candidates} candidates repeats the last of "
          f"{args.history} history titles (zero-shot, constrained to the label tokens or to the candidate "
          f"titles, seed {args.seed})\n")
    print("| answer | cases | accuracy | chance | share of the most chosen candidate position |")
    print("|---|---|---|---|---|")
    for scheme, accuracy, top_share in rows:
        print(f"| {scheme} | {args.cases} | {accuracy:.3f} | {1 / args.candidates:.3f} | {top_share:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
