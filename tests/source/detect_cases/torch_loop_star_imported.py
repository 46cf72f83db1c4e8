from utils.data import trainloader
from utils.model.Net import *
device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
for epoch in range(5):
    for i, data in enumerate(trainloader, 0):
        inputs, labels = data[0].to(device), data[1].to(device)
        optimizer.zero_grad()
        loss = criterion(net(inputs), labels)
        loss.backward()
        optimizer.step()
