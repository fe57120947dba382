"""Training side of facecam: data preparation, models, the training loop and evaluation (needs torch)."""
