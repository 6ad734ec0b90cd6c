"""Candidate scoring head: the answer without label binding (not in the Speeder paper).

Speeder's paper answer is a label token (Fig. 3): the LLM has to tie each label to the item
vector written after it before any item vector can move its answer. This head reads the
LLM's last hidden state h at the answer position instead and scores each candidate c by its
own fused vector e_mm(c) (eq 10), through a small learned projection, as LLM-SRec and E4SRec
score items from the LLM's hidden state:

    s(c) = tau * cos(W h + b, e_mm(c)),   tau = exp(logit_scale) (learned, at most 100)

The query q = W h reads the hidden state ``score_readout`` names (not in the paper either):
``last_item`` (the default) the last history item's placeholder, where a causal LLM has seen the
whole history and nothing else (SASRec predicts from the same place); ``answer`` the answer
position; ``both`` the two summed, q = W h_answer + W' h_last.

Cosine similarity keeps the score on one scale whatever the norms of h and e_mm (an untrained
MRC's vectors have norms 10.9-13.6 on ml-100k, the LLM's hidden states others); the learned
temperature tau sets how peaked the distribution over candidates is (CLIP's habit). Training
is cross-entropy over the scores; the ranking gives NDCG / MRR and every answer is valid.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = math.log(100.0)


class CandidateHead(nn.Module):
    """Scores candidates from the answer position's hidden state (see the module doc).

    Args:
        hidden: the LLM's hidden size (the width of h and of e_mm).
        init_temperature: tau at the start.
        readouts: how many hidden states make the query (1, or 2 for ``score_readout: both``);
            each has its own projection.
    """

    def __init__(self, hidden, init_temperature=10.0, readouts=1):
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.second_proj = nn.Linear(hidden, hidden) if readouts == 2 else None
        self.logit_scale = nn.Parameter(torch.tensor(math.log(float(init_temperature))))

    def forward(self, answer_hidden, item_vectors, second_hidden=None):
        """Scores [B, C] of ``item_vectors`` [B, C, H] (or [N, H], shared by all rows -> [B, N])
        from ``answer_hidden`` [B, H] (plus ``second_hidden`` [B, H] with two readouts)."""
        query = self.proj(answer_hidden.float())
        if self.second_proj is not None:
            query = query + self.second_proj(second_hidden.float())
        query = F.normalize(query, dim=-1)
        keys = F.normalize(item_vectors.float(), dim=-1)
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()
        if keys.dim() == 2:
            return scale * query @ keys.T
        return scale * torch.einsum("bh,bch->bc", query, keys)
