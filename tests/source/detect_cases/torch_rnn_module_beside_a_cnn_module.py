"""Two nn.Module classes: the sequence model is trained, the CNN is only defined."""
import torch
from torch import nn


class ImageNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.head = nn.Linear(8 * 26 * 26, 10)

    def forward(self, x):
        return self.head(torch.flatten(torch.relu(self.conv(x)), 1))


class SequenceNet(nn.Module):
    def __init__(self, features=8, hidden=32):
        super().__init__()
        self.rnn = nn.GRU(features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)

    def encode(self, x):
        out, _ = self.rnn(x)
        return out[:, -1]

    def forward(self, x):
        return self.head(self.encode(x))


model = SequenceNet()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(5):
    for xb, yb in loader:
        loss = nn.functional.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
