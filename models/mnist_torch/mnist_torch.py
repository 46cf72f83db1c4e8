"""A small PyTorch convolutional network for handwritten digits (the PyTorch twin of mnist_cnn).

Like the Keras example it starts deliberately weak (one epoch, few filters); mlci tunes it past the threshold.
"""
import torch
from torch import nn

HPARAMS = {
    "conv_blocks": 1,
    "filters": 4,
    "kernel_size": 3,
    "dense_layers": 0,
    "units": 32,
    "dropout": 0.0,
    "optimizer": "adam",
    "learning_rate": 0.001,
    "epochs": 1,
    "batch_size": 64,
}


def build_model(hp):
    """Images come as (n, 1, 28, 28) float32 in [0, 1]; the network returns one score per digit."""
    layers, channels = [], 1
    for block in range(hp["conv_blocks"]):
        width = hp["filters"] * 2**block
        layers += [nn.Conv2d(channels, width, hp["kernel_size"], padding="same"), nn.ReLU(), nn.MaxPool2d(2)]
        channels = width
    layers.append(nn.Flatten())
    with torch.no_grad():  # the flattened width follows from the blocks: measure it once
        features = nn.Sequential(*layers)(torch.zeros(1, 1, 28, 28)).shape[1]
    for _ in range(hp["dense_layers"]):
        layers += [nn.Linear(features, hp["units"]), nn.ReLU()]
        if hp["dropout"]:
            layers.append(nn.Dropout(hp["dropout"]))
        features = hp["units"]
    layers.append(nn.Linear(features, 10))
    return nn.Sequential(*layers)
