"""mlci: push model code, get a trained, checked, tuned and reported model.

The public surface: the run store, config, and one main function per pipeline step.
"""
__version__ = "0.1.0"
