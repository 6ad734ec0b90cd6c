"""Plugin trainers (``<Model>Trainer``) and the candidate-protocol evaluation."""
