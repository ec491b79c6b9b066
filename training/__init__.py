"""Training side of EoTD Studio: data, fine-tuning, evaluation and retraining scripts."""
