"""Training: the original optimizers, distribution strategies, the loop, metrics."""
