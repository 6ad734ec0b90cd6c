"""Dataset preparation: Amazon Reviews raw files -> atomic files (amazon), the generated
multimodal sample (synthetic), where datasets live in the data home (registry), and the
command line of ``python dataset/prepare.py`` (cli)."""
