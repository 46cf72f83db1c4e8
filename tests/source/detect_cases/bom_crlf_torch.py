import torch.nn as nn
import torch

net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.LazyLinear(2))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
loss = net(x).sum()
loss.backward()
opt.step()
