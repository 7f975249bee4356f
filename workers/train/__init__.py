"""Multi-phase training (the `train` job): knowledge, then skills with replay, with DeepSpeed
in processes launched beside the worker."""
