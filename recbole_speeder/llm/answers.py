"""How each LLM model's answer names a candidate: labels, titles, yes / no.

Label answers (Speeder, paper Fig. 3, t_out = 1): the answer is one token, the chosen
candidate's label (``1``..``9`` or ``A``..``Z``):

- :func:`label_scores`: the logits of the label tokens at the answer position rank the
  candidates (constrained decoding, ValidRatio 1);
- :func:`label_answer_loss`: eq 19, next-token cross-entropy on the single answer token;
- :func:`parse_label_answer`: which candidate a freely generated answer names.

Title answers (TALLRec, LLaRA, the zero-shot LLM): the chosen candidate's title, many tokens
long (t_out ~ 20):

- :func:`match_title`: which candidate a generated answer names (free generation, the
  baselines' papers' protocol); exactly one named title is a valid answer;
- :func:`answer_token_logprobs`: log-probability of every answer token under teacher
  forcing, with the LM head applied to the answer positions only (never the full
  [B, L, V] logits); the training loss is their negative mean (:func:`title_answer_loss`,
  eq 19 over all answer tokens) and the constrained score of a candidate is their sum or mean
  over its title (:func:`title_scores`).

Yes / no answers (MLLM-MSR, arXiv 2408.09698, section 3.4; Speeder's PPT question): the
recommender answers "Yes" or "No" to "will the user buy this candidate?" and candidates are
ranked by p = p('yes') / (p('yes') + p('no')) = sigmoid(logit_yes - logit_no), read at the
answer position; only the two LM-head rows this needs are computed, in float32 so that
scores do not tie. The training loss is the cross-entropy restricted to those two tokens (a
binary log-loss on p): exactly the negative log-likelihood of the score used for ranking.
"""

import re

import torch
import torch.nn.functional as F

from recbole_speeder.llm.decoding import answer_logits, causal_lm_parts, decoder_hidden


# ---- label answers (Speeder) ----------------------------------------------------------
def label_scores(logits, label_token_ids):
    """Scores [B, C] of the candidates: logits of their label tokens (constrained decoding)."""
    return logits[:, label_token_ids.to(logits.device)]


def label_answer_loss(logits, target_token_ids):
    """Eq 19: next-token cross-entropy on the single answer token."""
    return F.cross_entropy(logits.float(), target_token_ids.to(logits.device))


def parse_label_answer(text, num_candidates, labels=None):
    """0-based candidate position named by a generated answer, or None when invalid.

    With digit labels every number in the text is read; the answer is valid only when the
    text names exactly one distinct number and it lies in 1..C. With letter labels the
    standalone capital letters are read the same way (an article "A" therefore counts as a
    label). ``labels`` defaults to digits.
    """
    labels = list(labels) if labels is not None else [str(i) for i in
                                                      range(1, num_candidates + 1)]
    if labels and labels[0].isdigit():
        found = {int(m) for m in re.findall(r"\d+", text)}
        if len(found) != 1:
            return None
        value = found.pop()
        return value - 1 if 1 <= value <= num_candidates else None
    found = set(re.findall(r"(?<![A-Za-z])[A-Z](?![A-Za-z])", text))
    if len(found) != 1:
        return None
    value = found.pop()
    return labels.index(value) if value in labels[:num_candidates] else None


# ---- title answers (TALLRec, LLaRA, ZeroShot) -----------------------------------------
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


def answer_token_logprobs(model, inputs_embeds, attention_mask, labels, chunk_rows=2048, return_hits=False):
    """Teacher-forced log p(answer token) of every answer position.

    Args:
        labels: [B, L] token id at every answer position (the token itself, not shifted),
            ``IGNORE`` elsewhere; position t is predicted from the hidden state at t - 1.
        return_hits: also return whether each answer token is the arg-max prediction.

    Returns:
        (logprobs [N], rows [N]) -- plus hits [N] bool with ``return_hits`` --: one entry per
        answer token in row-major order and the row it belongs to. The LM head runs on the N
        predicting positions only, in chunks of ``chunk_rows`` when no gradient is needed.
    """
    _, lm_head = causal_lm_parts(model)
    hidden = decoder_hidden(model, inputs_embeds, attention_mask)
    targets = labels[:, 1:]
    select = targets != IGNORE
    predicting = hidden[:, :-1][select]
    tokens = targets[select]
    rows = select.nonzero()[:, 0]
    step = len(tokens) if torch.is_grad_enabled() else max(1, int(chunk_rows))
    parts, hits = [], []
    for start in range(0, len(tokens), max(step, 1)):
        logits = lm_head(predicting[start:start + step]).float()
        chosen = tokens[start:start + step, None]
        parts.append(logits.gather(1, chosen).squeeze(1) - logits.logsumexp(dim=1))
        if return_hits:
            hits.append(logits.argmax(dim=1) == chosen.squeeze(1))
    logprobs = torch.cat(parts) if parts else hidden.new_zeros(0, dtype=torch.float32)
    if return_hits:
        return logprobs, rows, torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool, device=rows.device)
    return logprobs, rows


def title_answer_loss(model, inputs_embeds, attention_mask, labels):
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


# ---- yes / no answers (MLLM-MSR, PPT) ----------------------------------------------------
def yes_no_logits(model, input_ids, attention_mask, yes_id, no_id):
    """[N, 2] float32 logits of (yes, no) at the last position of left-padded prompts."""
    embeds = model.get_input_embeddings()(input_ids)
    return answer_logits(model, embeds, attention_mask, token_ids=[int(yes_id), int(no_id)])


def pair_logits(logits, yes_id, no_id):
    """The (yes, no) columns of full-vocabulary logits [N, V] -> [N, 2]."""
    return logits[:, [int(yes_id), int(no_id)]].float()


def yes_probability(pair):
    """p(yes) / (p(yes) + p(no)) from [N, 2] (yes, no) logits."""
    pair = pair.float()
    return torch.sigmoid(pair[:, 0] - pair[:, 1])


def yes_log_odds(pair):
    """log(p / (1 - p)) = logit_yes - logit_no: ranks exactly as p does, without p saturating
    to 1.0 in float32 (which would tie confident candidates)."""
    pair = pair.float()
    return pair[:, 0] - pair[:, 1]


def yes_no_loss(pair, is_yes):
    """Mean cross-entropy over the two answer tokens; ``is_yes`` [N] bool = the answer is yes."""
    target = (~is_yes.bool()).long().to(pair.device)  # column 0 = yes, 1 = no
    return F.cross_entropy(pair.float(), target)
