"""Reading the user's code: detection of the model kind, and rewriting of unmodified scripts."""
