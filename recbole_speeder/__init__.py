"""recbole-speeder: Speeder (arXiv 2511.05885) as a RecBole plugin."""

__version__ = "0.1.0"
