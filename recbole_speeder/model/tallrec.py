r"""TALLRec
################################################

Reference:
    Keqin Bao et al. "TALLRec: An Effective and Efficient Tuning Framework to Align Large
    Language Model with Recommendation." RecSys 2023.

The LLM baseline of the Speeder paper's tables, on the plugin's backbone and protocol: the
history and the candidates are written as their titles, the LLM is instruction-tuned with
LoRA to answer with the next item's title (cross-entropy on the answer tokens), and at test
time it generates a title that is matched against the candidates
(:mod:`recbole_speeder.model.title_llm`). The original TALLRec answers yes/no about one item;
like the Speeder paper, it is run here on the same candidate sets as every other model.
"""

from recbole_speeder.model.title_llm import TitleLLMRecommender


class TALLRec(TitleLLMRecommender):
    """Titles only, LoRA instruction tuning, answers the chosen candidate's title."""

    fine_tuned = True
