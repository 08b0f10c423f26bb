"""Training: configuration and recipes, the loop, schedules, averaging, checkpoints, runs,
fine-tuning."""
