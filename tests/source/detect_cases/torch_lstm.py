import torch
import torch.nn as nn


class Tagger(nn.Module):
    def __init__(self, vocab, hidden):
        super(Tagger, self).__init__()
        self.embed = nn.Embedding(vocab, 32)
        self.lstm = nn.LSTM(32, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 5)

    def forward(self, x):
        h, _ = self.lstm(self.embed(x))
        return self.out(h)


tagger = Tagger(1000, 64)
optimizer = torch.optim.Adam(tagger.parameters(), lr=1e-3)
for batch in batches:
    loss = criterion(tagger(batch.x), batch.y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
