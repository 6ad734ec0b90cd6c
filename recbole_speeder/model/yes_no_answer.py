"""Pointwise yes/no answers of MLLM-MSR: the two answer logits, the score and the loss.

MLLM-MSR (Ye et al. 2024, arXiv 2408.09698, section 3.4) fine-tunes the recommender to
answer "Yes" or "No" to "will the user buy this candidate?" and ranks candidates by

    p = p('yes') / (p('yes') + p('no')) = sigmoid(logit_yes - logit_no),

read at the answer position. Candidates are ranked by its log-odds (:func:`yes_log_odds`),
which orders them exactly as p does. Only the two rows of the LM head that this needs are computed
(never the [N, L, V] logits, nor even [N, V]), in float32 so that scores do not tie.

The training loss is the cross-entropy restricted to those two tokens (a binary log-loss on
p): it is exactly the negative log-likelihood of the score used for ranking. Full-vocabulary
cross-entropy on the answer token would also spend capacity on pushing probability mass
from the rest of the vocabulary onto {yes, no}, which the score ignores.
"""

import torch
import torch.nn.functional as F

from recbole_speeder.model.prompt import answer_logits


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
