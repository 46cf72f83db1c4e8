import torch.nn as nn
import torch
net = nn.Sequential(nn.Linear(4, 3))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
net(x).sum().backward()
opt.step()
