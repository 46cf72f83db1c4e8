"""Orchestration: the run oracle decides what a run does next; the pipeline, the trial lifecycle and the
monitor carry its decisions out."""
