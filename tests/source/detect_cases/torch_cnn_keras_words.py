"""Port of the Keras example: model.add(Conv2D(32, 3)); from keras.layers import Dense."""
import torch
import torch.nn as nn
import torch.nn.functional as F

KERAS_EQUIVALENT = "keras.Sequential([Conv2D(32, 3), Flatten(), Dense(10)])"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)  # like keras Conv2D
        self.fc = nn.Linear(32 * 26 * 26, 10)  # like keras Dense

    def forward(self, x):
        return self.fc(torch.flatten(F.relu(self.conv1(x)), 1))


model = Net()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for data, target in loader:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(data), target)
    loss.backward()
    optimizer.step()
