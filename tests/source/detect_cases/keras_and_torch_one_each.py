"""The same dense classifier in Keras and in PyTorch, trained side by side to compare them."""
import keras
import torch
from torch import nn

keras_net = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
keras_net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
keras_net.fit(x_train, y_train, epochs=5)

torch_net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
optimizer = torch.optim.Adam(torch_net.parameters())
for epoch in range(5):
    loss = nn.functional.cross_entropy(torch_net(torch.tensor(x_train)), torch.tensor(y_train))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
