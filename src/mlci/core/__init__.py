"""Core: errors, configuration, the run store and the objective; every other layer builds on these."""
