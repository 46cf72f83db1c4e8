import torch
from torch import nn
import pytorch_lightning as pl

class LitAutoEncoder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 3))
    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.encoder(x.view(x.size(0), -1)), x)
    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)

trainer = pl.Trainer(max_epochs=1)
trainer.fit(model=LitAutoEncoder(), train_dataloaders=loader)
