"""Tuning: strategies that propose a trial's hyperparameters, their search spaces, and pruning."""
