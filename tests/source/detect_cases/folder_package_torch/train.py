from pyimagesearch.lenet import LeNet
from torch.optim import Adam
from torch import nn
import torch

model = LeNet(numChannels=1, classes=10).to(device)
opt = Adam(model.parameters(), lr=1e-3)
lossFn = nn.NLLLoss()
for e in range(0, 10):
    model.train()
    for (x, y) in trainDataLoader:
        loss = lossFn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
