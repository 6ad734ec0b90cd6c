r"""ZeroShot
################################################

The Speeder paper's "Llama2" row: the backbone LLM asked the title prompt of TALLRec without
any fine-tuning (no LoRA, ``epochs: 0``). It generates a title that is matched against the
candidates (:mod:`recbole_speeder.model.title_llm`); ValidRatio measures how often an
untuned LLM names exactly one candidate. ``use_chat_template`` is on by default so that an
instruction-tuned backbone sees the prompt as a user turn.
"""

from recbole_speeder.model.title_llm import TitleLLMRecommender


class ZeroShot(TitleLLMRecommender):
    """The untuned backbone answering the title prompt (no trainable parameters)."""

    fine_tuned = False
