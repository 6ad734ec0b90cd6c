"""Distillation of a sequence model into the LLM's readout (not in the Speeder paper).

LLM-SRec ("Lost in Sequence", arXiv 2502.13909) pulls the LLM's representation of a user's
sequence towards that of a frozen, pre-trained collaborative-filtering sequence model, so the
LLM learns what the ID model knows about the order of the items. Here the teacher is the SASRec
Speeder already trains for its id features (e_s, section 2.3), and the student is the hidden
state the scoring head reads at the last history item (``score_readout: last_item``):

    L_distill = 1 - cos(D h_last + d, u_SASRec)

with D, d learned (``distill_weight`` x L_distill is added to the training loss). The cosine
keeps the loss on one scale whatever the norms of the LLM's and SASRec's representations.
"""

import torch.nn.functional as F
from torch import nn


class SequenceDistillation(nn.Module):
    """The projection D of the LLM's hidden state into the teacher's space, and the loss.

    Args:
        hidden: the LLM's hidden size.
        teacher_hidden: the width of the teacher's sequence representation.
    """

    def __init__(self, hidden, teacher_hidden):
        super().__init__()
        self.proj = nn.Linear(hidden, teacher_hidden)

    def forward(self, student_hidden, teacher_repr):
        """Mean of 1 - cos(D h + d, u) over the rows of ``student_hidden`` [B, H] and
        ``teacher_repr`` [B, H_t]."""
        student = self.proj(student_hidden.float())
        return (1.0 - F.cosine_similarity(student, teacher_repr.float(), dim=-1)).mean()
