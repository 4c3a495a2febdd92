"""The training math: the model (written for one device), the parallelisms applied from outside, the
checkpoints that move between plans, the training text. May import: core and torch."""
