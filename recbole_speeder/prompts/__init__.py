"""Prompts: Speeder's hybrid prompt (Fig. 3), the title prompts of the baselines, MLLM-MSR's
preference prompts, and what they share (piece-wise tokenisation, batches, padding)."""
