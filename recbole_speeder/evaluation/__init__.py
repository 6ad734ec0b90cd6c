"""The candidate protocol of the paper's evaluation (section 3.1): scores, ranks and metrics."""
