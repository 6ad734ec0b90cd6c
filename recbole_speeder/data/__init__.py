"""Data side of recbole-speeder: dataset preparation, dataset classes and candidate sets."""
