"""The LLM side: backbone loading with LoRA (backbone), running it on prompt embeddings
(decoding), and how an answer names a candidate (answers)."""
