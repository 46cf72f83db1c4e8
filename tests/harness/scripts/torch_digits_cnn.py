"""A plain PyTorch script: a CNN module class on the 8x8 digits, a hand-written batch loop; writes accuracy.txt."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

BATCH = 32
rng = np.random.RandomState(0)
digits = load_digits()
images = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
labels = torch.tensor(digits.target)
order = torch.tensor(rng.permutation(len(labels)))
train, test = order[:1300], order[1300:]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(8 * 2 * 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc1(torch.flatten(x, 1))


model = Net()
optimizer = torch.optim.Adam(model.parameters(), lr=0.001)

for epoch in range(1, 2 + 1):
    model.train()
    for i in range(0, len(train), BATCH):
        batch = train[i:i + BATCH]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images[batch]), labels[batch])
        loss.backward()
        optimizer.step()

model.eval()
with torch.no_grad():
    accuracy = (model(images[test]).argmax(1) == labels[test]).float().mean().item()
with open("accuracy.txt", "w") as f:
    f.write(str(accuracy))
