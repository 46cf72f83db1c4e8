import torch
from model import *
model = Model()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
loss = model(x).sum()
loss.backward()
opt.step()
