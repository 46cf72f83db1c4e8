from torch.nn import Module, Conv2d, Linear, ReLU, MaxPool2d, LogSoftmax
from torch import flatten

class LeNet(Module):
    def __init__(self, numChannels, classes):
        super(LeNet, self).__init__()
        self.conv1 = Conv2d(in_channels=numChannels, out_channels=20, kernel_size=(5, 5))
        self.fc1 = Linear(in_features=800, out_features=500)
    def forward(self, x):
        return self.fc1(flatten(self.conv1(x), 1))
