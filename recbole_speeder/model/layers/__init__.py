"""Building blocks of the models: MRC/MoME (eqs 1-10, 18), SPAE (PPL eqs 15-17, PPT eqs 13-14),
the MPO stage table (section 2.5), and MLLM-MSR's recurrent preference summaries."""
