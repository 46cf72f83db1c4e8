"""A plain PyTorch script: an MLP on scikit-learn's digits with a DataLoader; prints its accuracy."""
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

EPOCHS = 1

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.3, random_state=42, stratify=y)
train = TensorDataset(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train))
loader = DataLoader(train, batch_size=64, shuffle=True)

model = nn.Sequential(
    nn.Linear(64, 4),  # a narrow hidden layer
    nn.ReLU(),
    nn.Linear(4, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(EPOCHS):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()

with torch.no_grad():
    predicted = model(torch.tensor(X_test, dtype=torch.float32)).argmax(dim=1)
accuracy = (predicted == torch.tensor(y_test)).float().mean().item()
print(f"test accuracy: {accuracy:.4f}")
