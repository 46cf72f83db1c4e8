"""The training harness: what runs inside a trial's process or container (Keras, scikit-learn, scripts)."""
