"""Two PyTorch networks (a CNN and an MLP) against a Keras dense baseline: PyTorch trains more of them."""
import keras
import torch
from torch import nn

baseline = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10, activation="softmax")])
baseline.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
baseline.fit(x_train, y_train, epochs=5)

cnn = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
for net in (cnn, mlp):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for epoch in range(5):
        loss = nn.functional.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
