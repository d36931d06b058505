"""Training: configs, deterministic data, objectives, the loop, checkpoints, DDP."""
