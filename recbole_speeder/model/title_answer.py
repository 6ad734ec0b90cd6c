"""Answers that name a candidate by its title: matching, teacher-forced loss, title scoring.

Shared by the title-answering LLM baselines (TALLRec, LLaRA, the zero-shot LLM). Their answer
is the chosen candidate's title, many tokens long (t_out ~ 20 where Speeder's is 1):

- :func:`match_title`: which candidate a generated answer names (free generation, the
  baselines' papers' protocol); exactly one named title is a valid answer;
- :func:`answer_token_logprobs`: log-probability of every answer token under teacher
  forcing, with the LM head applied to the answer positions only (never the full
  [B, L, V] logits); the training loss is their negative mean (next-token cross-entropy on
  the answer, as in eq 19 but over all answer tokens) and the constrained score of a
  candidate is their sum or mean over its title (:func:`title_scores`).
"""

import re

import torch

from recbole_speeder.model.prompt import causal_lm_parts, decoder_hidden

IGNORE = -100  # label of positions that are not answer tokens
_WORD = re.compile(r"\w+")


def normalize_title(text):
    """Lower-case words of ``text`` (punctuation and spacing dropped): the matching form."""
    return _WORD.findall(str(text).lower())


def _occurrences(words, title):
    n = len(title)
    return [(i, i + n) for i in range(len(words) - n + 1) if words[i:i + n] == title]


def match_title(answer, titles):
    """0-based position of the one candidate that ``answer`` names, or None (invalid answer).

    Rules (on lower-cased words, punctuation ignored; only the answer's first line counts):

    - a candidate is named when its whole title occurs in the answer on word boundaries,
      alone (exact title) or with extra words around it;
    - an occurrence that lies inside the occurrence of a longer candidate title does not
      name the shorter one ("Toy Story 2" names "Toy Story 2", not "Toy Story");
    - no candidate named, or two or more named, is invalid; so is naming a title that two
      candidates share (the answer cannot tell them apart).
    """
    first_line = str(answer).strip().split("\n", 1)[0]
    words = normalize_title(first_line)
    normalized = [normalize_title(t) for t in titles]
    spans = {k: _occurrences(words, t) for k, t in enumerate(normalized) if t}
    named = []
    for k, own in spans.items():
        longer = [s for j, other in spans.items() if len(normalized[j]) > len(normalized[k]) for s in other]
        if any(not any(a <= s and e <= b for a, b in longer) for s, e in own):
            named.append(k)
    if len(named) != 1:
        return None
    chosen = named[0]
    if sum(normalized[k] == normalized[chosen] for k in range(len(normalized))) > 1:
        return None
    return chosen


def answer_token_logprobs(model, inputs_embeds, attention_mask, labels, chunk_rows=2048):
    """Teacher-forced log p(answer token) of every answer position.

    Args:
        labels: [B, L] token id at every answer position (the token itself, not shifted),
            ``IGNORE`` elsewhere; position t is predicted from the hidden state at t - 1.

    Returns:
        (logprobs [N], rows [N]): one entry per answer token in row-major order and the row
        it belongs to. The LM head runs on the N predicting positions only, in chunks of
        ``chunk_rows`` when no gradient is needed.
    """
    _, lm_head = causal_lm_parts(model)
    hidden = decoder_hidden(model, inputs_embeds, attention_mask)
    targets = labels[:, 1:]
    select = targets != IGNORE
    predicting = hidden[:, :-1][select]
    tokens = targets[select]
    rows = select.nonzero()[:, 0]
    step = len(tokens) if torch.is_grad_enabled() else max(1, int(chunk_rows))
    parts = []
    for start in range(0, len(tokens), max(step, 1)):
        logits = lm_head(predicting[start:start + step]).float()
        parts.append(logits.gather(1, tokens[start:start + step, None]).squeeze(1) - logits.logsumexp(dim=1))
    logprobs = torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)
    return logprobs, rows


def answer_loss(model, inputs_embeds, attention_mask, labels):
    """Cross-entropy of the answer tokens (teacher forcing), averaged over all of them."""
    logprobs, _ = answer_token_logprobs(model, inputs_embeds, attention_mask, labels)
    return -logprobs.mean()


def title_scores(model, inputs_embeds, attention_mask, labels, num_candidates, reduce="mean"):
    """Constrained scores [B, C] from prompts built once per (sequence, candidate).

    Row ``b * C + j`` of the inputs holds sequence b's prompt followed by candidate j's
    answer tokens (title + end of sequence); its score is the sum (``reduce='sum'``) or the
    mean (``'mean'``, length-normalised) of their log-probabilities.
    """
    logprobs, rows = answer_token_logprobs(model, inputs_embeds, attention_mask, labels)
    total = torch.zeros(labels.shape[0], device=logprobs.device).index_add_(0, rows, logprobs)
    if reduce == "mean":
        counts = torch.zeros_like(total).index_add_(0, rows, torch.ones_like(logprobs))
        total = total / counts.clamp(min=1)
    return total.view(-1, int(num_candidates))
