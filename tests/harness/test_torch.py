"""PyTorch (issue 19): model modules trained by the harness with exact resume after SIGKILL, and plain
PyTorch scripts whose knobs (epochs, learning rate, layer widths, batch size) are found and rewritten."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import digits_trial as trial_dir
from conftest import mlci, write_model
from mlci.core.errors import TrialError
from mlci.core.store import HparamsRecord, MetricsRecord, RunStore, write_json
from mlci.harness.script import train_script
from mlci.harness.script_hooks import flush_open_files
from mlci.harness.train import train_trial
from mlci.source.rewrite import rewrite, scan
from skips import require_module

torch = require_module("torch", "torch", module_level=True)  # the `torch` extra (make test installs it)

SCRIPTS = Path(__file__).parent / "scripts"

MLP_SOURCE = '''
    """A small PyTorch MLP for the 8x8 digits."""
    import torch
    from torch import nn

    HPARAMS = {"units": 32, "dropout": 0.1, "learning_rate": 0.01, "epochs": 3, "batch_size": 32}


    def build_model(hp):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, hp["units"]), nn.ReLU(), nn.Dropout(hp["dropout"]),
                             nn.Linear(hp["units"], 10))
'''

CNN_SOURCE = '''
    """A PyTorch CNN for the 8x8 digits with a learning-rate schedule (its state is checkpointed too)."""
    import torch
    from torch import nn

    HPARAMS = {"filters": 16, "dropout": 0.2, "learning_rate": 0.003, "epochs": 5, "batch_size": 16}


    def build_model(hp):
        return nn.Sequential(nn.Conv2d(1, hp["filters"], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(hp["filters"], 2 * hp["filters"], 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Dropout(hp["dropout"]), nn.Linear(2 * hp["filters"] * 16, 10))


    def build_optimizer(model, hp):
        optimizer = torch.optim.SGD(model.parameters(), lr=hp["learning_rate"], momentum=0.9)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
'''


# ----------------------------------------------------------------------------- module mode


def test_a_torch_module_trains_evaluates_and_saves_its_weights(tmp_path):
    model = write_model(tmp_path / "m", MLP_SOURCE, "mlp.py")
    folder = trial_dir(tmp_path, {"epochs": 2})
    seen = []
    metrics = train_trial(folder, model, echo=seen.append)
    saved = MetricsRecord.model_validate_json((folder / "metrics.json").read_text())
    assert saved.framework == "torch" and saved.epochs_done == 2 and saved.value == metrics.value
    assert 0.5 < saved.accuracy <= 1 and saved.n_train == 1347 and saved.n_test == 450
    assert sorted(saved.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(saved.history["val_accuracy"]) == 2 and saved.history["val_accuracy"][-1] == saved.accuracy
    assert "torch" in saved.versions and any(line.startswith("epoch 2/2: ") for line in seen)
    weights = torch.load(folder / "model.pt", weights_only=True)
    assert weights["1.weight"].shape == (32, 64)  # the state dict of the module build_model returned
    assert sorted(p.name for p in (folder / "checkpoints" / "torch").iterdir()) == ["epoch-1.pt", "epoch-2.pt"]


def test_the_module_may_bring_its_own_training_loop_and_evaluation(tmp_path):
    source = MLP_SOURCE + '''

    def train_epoch(model, batches, optimizer, hp):
        model.train()
        for x, y in batches:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1).backward()
            optimizer.step()
        return {"loss": 0.5}


    def evaluate(model, x, y, hp):
        model.eval()
        with torch.no_grad():
            return {"accuracy": float((model(x).argmax(1) == y).float().mean()), "loss": 0.25}
    '''
    model = write_model(tmp_path / "m", source, "own_loop.py")
    metrics = train_trial(trial_dir(tmp_path, {"epochs": 2}), model, echo=lambda _: None)
    assert metrics.history["loss"] == [0.5, 0.5] and metrics.history["val_loss"] == [0.25, 0.25]
    assert metrics.loss == 0.25 and 0.3 < metrics.accuracy <= 1


def test_a_torn_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    model = write_model(tmp_path / "m", MLP_SOURCE, "mlp.py")
    whole = train_trial(trial_dir(tmp_path, name="whole"), model, echo=lambda _: None)
    folder = trial_dir(tmp_path, name="torn")
    train_trial(folder, model, echo=lambda _: None)
    (folder / "checkpoints" / "torch" / "epoch-3.pt").write_bytes(b"PK\x03\x04torn")
    (folder / "metrics.json").unlink()
    seen = []
    again = train_trial(folder, model, echo=seen.append)
    assert any("epoch-3.pt is unreadable" in line for line in seen)
    assert again.resumed_from_epoch == 2 and again.epochs_done == 3
    assert again.history == whole.history and again.accuracy == whole.accuracy


def test_a_shape_mismatch_is_one_line_naming_the_input_layout(tmp_path):
    model = write_model(tmp_path / "m", MLP_SOURCE.replace("nn.Linear(64,", "nn.Linear(63,"), "bad.py")
    with pytest.raises(TrialError) as caught:
        train_trial(trial_dir(tmp_path), model, echo=lambda _: None)
    assert caught.value.message.startswith("PyTorch training failed: mat1 and mat2 shapes cannot be multiplied")
    assert "(n, 1, h, w) float32" in caught.value.hint


def _epochs_logged(folder: Path) -> int:
    try:
        return len((folder / "checkpoints" / "epochs.jsonl").read_text().splitlines())
    except OSError:
        return 0


@pytest.mark.slow
def test_sigkill_in_epoch_2_resumes_to_the_same_accuracy_history_and_epochs(tmp_path):
    """Model, optimizer, scheduler and the random streams (dropout, shuffling) all come back from the checkpoint."""
    model = write_model(tmp_path / "m", CNN_SOURCE, "cnn.py")
    straight = trial_dir(tmp_path, name="straight", seed=7)
    assert mlci("train", "--trial-dir", str(straight), "--model", str(model)).returncode == 0
    killed = trial_dir(tmp_path, name="killed", seed=7)
    process = subprocess.Popen([sys.executable, "-m", "mlci", "train", "--trial-dir", str(killed), "--model",
                                str(model)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _epochs_logged(killed) < 1 and time.monotonic() < deadline:  # epoch 1 done: now inside epoch 2
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()
    done = mlci("train", "--trial-dir", str(killed), "--model", str(model))
    assert done.returncode == 0, done.stderr
    resumed = MetricsRecord.model_validate_json((killed / "metrics.json").read_text())
    reference = MetricsRecord.model_validate_json((straight / "metrics.json").read_text())
    assert 1 <= resumed.resumed_from_epoch < 5 and "resuming from the checkpoint after epoch" in done.stdout
    assert resumed.epochs_done == 5 == reference.epochs_done
    assert resumed.history == reference.history  # every epoch, those before the kill too, to the last bit
    assert resumed.accuracy == reference.accuracy and resumed.loss == reference.loss
    assert len(set(reference.history["val_loss"])) == 5  # the epochs differ: one skipped or repeated would show
    assert torch.equal(torch.load(killed / "model.pt")["0.weight"], torch.load(straight / "model.pt")["0.weight"])


# ----------------------------------------------------------------------------- script mode: knobs


def test_a_torch_scripts_knobs_and_their_lines():
    found = scan((SCRIPTS / "torch_digits_mlp.py").read_text(), "torch_digits_mlp.py")
    assert found.framework == "torch"
    assert found.hparams() == {"epochs": 1, "batch_size": 64, "units": 4, "learning_rate": 0.01}
    lines = {(s.knob, s.line, s.value) for s in found.sites}
    assert lines == {("epochs", 23, 1), ("batch_size", 13, 64), ("units", 16, 4), ("units", 18, 4),
                     ("learning_rate", 20, 0.01)}
    assert next(s.via for s in found.sites if s.knob == "epochs") == "EPOCHS = 1 (line 8)"
    cnn = scan((SCRIPTS / "torch_digits_cnn.py").read_text(), "torch_digits_cnn.py")
    assert cnn.hparams() == {"batch_size": 32, "filters": 4, "learning_rate": 0.001, "epochs": 2}


def test_widths_are_rewritten_with_the_inputs_that_match_them_and_the_output_layer_stays():
    source = (SCRIPTS / "torch_digits_cnn.py").read_text()
    done = rewrite(source, {"filters": 6, "epochs": 4, "batch_size": 64, "learning_rate": 0.002})
    new = done.source
    assert "nn.Conv2d(1, 6, 3, padding=1)" in new and "nn.BatchNorm2d(6)" in new
    assert "nn.Conv2d(6, 12, kernel_size=3, padding=1)" in new
    assert "nn.Linear(12 * 2 * 2, 10)" in new  # the flattened width follows the last convolution
    assert "range(1, 4 + 1)" in new and "BATCH = 64" in new and "lr=0.002" in new
    mlp = rewrite((SCRIPTS / "torch_digits_mlp.py").read_text(), {"units": 48})
    assert "nn.Linear(64, 48),  # a narrow hidden layer" in mlp.source and "nn.Linear(48, 10)," in mlp.source
    assert mlp.changes == ["line 16: units 4 -> 48", "line 18: units 4 -> 48"]


@pytest.mark.parametrize("layers, knobs", [
    # a whole-number flattened width scales with the channels it counts; a shared constant moves once
    ("nn.Conv2d(1, 8, 3), nn.Conv2d(8, 16, 3), nn.Flatten(), nn.Linear(1024, 10)", {"filters": 8}),
    ("nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10)", {"units": 128}),
    # an input mlci cannot match to the width before it: that width is left alone (it would no longer fit)
    ("nn.Linear(784, 128), nn.ReLU(), nn.Linear(n_features, 10)", {}),
    ("nn.Linear(784, 10)", {}),  # only an output layer: its width is the classes
])
def test_which_widths_are_knobs(layers, knobs):
    source = f"import torch\nfrom torch import nn\nHIDDEN = 128\nmodel = nn.Sequential({layers})\n"
    found = scan(source)
    assert {k: v for k, v in found.hparams().items() if k in ("units", "filters")} == knobs
    if knobs.get("filters"):
        assert "nn.Linear(2048, 10)" in rewrite(source, {"filters": 16}).source  # 16 * 64 * 2
    if knobs.get("units"):
        new = rewrite(source, {"units": 64}).source
        assert "HIDDEN = 64" in new and new.count("HIDDEN") == 3


def test_an_epoch_loop_mlci_cannot_read_is_listed_as_not_tunable():
    found = scan("import torch\nfor epoch in range(start, stop, 2):\n    pass\n")
    assert [(u.knob, u.why) for u in found.unresolved] == [
        ("epochs", "the epoch loop is not range(N), range(0, N) or range(1, N + 1)")]


def test_a_cnn_script_with_wider_convolutions_still_fits_together_and_trains(tmp_path):
    folder = tmp_path / "t"
    write_json(folder / "hparams.json", HparamsRecord(trial=1, hparams={"filters": 6, "batch_size": 64}))
    metrics = train_script(folder, SCRIPTS / "torch_digits_cnn.py", echo=lambda _: None)
    assert metrics.framework == "torch" and metrics.source == "file:accuracy.txt" and 0 <= metrics.value <= 1
    assert "+        self.conv2 = nn.Conv2d(6, 12, kernel_size=3, padding=1)" in (folder / "model.diff").read_text()
    weights = torch.load(folder / "model.pt", weights_only=True)
    assert weights["conv2.weight"].shape == (12, 6, 3, 3) and weights["fc1.weight"].shape == (10, 48)


def test_looking_for_a_scripts_unflushed_files_after_torch_is_imported_warns_nothing(tmp_path):
    """flush_open_files checks every live object; PyTorch's deprecated aliases warned into every trial's log."""
    handle = (tmp_path / "accuracy.txt").open("w")
    handle.write("0.9")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert flush_open_files(tmp_path) >= 1
    assert (tmp_path / "accuracy.txt").read_text() == "0.9"
    handle.close()


# ----------------------------------------------------------------------------- script mode: end to end

LIGHTNING_SCRIPT = '''
    """A plain PyTorch Lightning script: an MLP on the digits, Trainer(max_epochs=4); prints its accuracy."""
    import pytorch_lightning as pl
    import torch
    from sklearn.datasets import load_digits
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)


    class Digits(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

        def training_step(self, batch, index):
            inputs, labels = batch
            return nn.functional.cross_entropy(self.net(inputs), labels)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)


    model = Digits()
    loader = DataLoader(TensorDataset(x[:1400], y[:1400]), batch_size=16, shuffle=True)
    trainer = pl.Trainer(max_epochs=4, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, loader)
    with torch.no_grad():
        accuracy = (model.net(x[1400:]).argmax(1) == y[1400:]).float().mean().item()
    print("accuracy:", accuracy)
'''


@pytest.mark.slow
def test_a_killed_lightning_script_resumes_its_fit_from_the_checkpoint_mlci_added(tmp_path):
    require_module("pytorch_lightning", "torch")
    script = write_model(tmp_path / "pl", LIGHTNING_SCRIPT, "digits_lightning.py")
    assert scan(script.read_text()).hparams() == {"epochs": 4, "batch_size": 16, "learning_rate": 0.05, "units": 32}
    folder = tmp_path / "t"
    write_json(folder / "hparams.json", HparamsRecord(trial=0, hparams={}))
    process = subprocess.Popen([sys.executable, "-m", "mlci", "train", "--trial-dir", str(folder), "--model",
                                str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = folder / "checkpoints" / "lightning-fit-1" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:  # epoch 1 is saved
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL and last.exists()
    done = mlci("train", "--trial-dir", str(folder), "--model", str(script))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mlci: Lightning fit #1 resumes from its checkpoint after epoch" in done.stdout
    metrics = MetricsRecord.model_validate_json((folder / "metrics.json").read_text())
    assert 1 <= metrics.resumed_from_epoch < 4 and metrics.epochs_done == 4
    assert metrics.framework == "torch" and metrics.source == "stdout" and 0.5 < metrics.value <= 1
    assert (folder / "model.pt").exists() and not (folder / "checkpoints" / "lightning-fit-1").exists()



@pytest.mark.slow
def test_an_unmodified_torch_script_is_tuned_past_the_threshold_by_rewriting(tmp_path):
    """A weak script (4 hidden units, one epoch: accuracy about 0.17) passes 0.9 once its literals are rewritten."""
    before = (SCRIPTS / "torch_digits_mlp.py").read_bytes()
    done = mlci("run", str(SCRIPTS / "torch_digits_mlp.py"), "--home", str(tmp_path / "store"), "--threshold", "0.9",
                "--max-trials", "4", "--strategy", "optuna", "--no-notify", "-q", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    run = RunStore(tmp_path / "store").runs()[0]
    assert run.record().kind.framework == "torch" and run.record().kind.mode == "script"
    trials = run.trials()
    baseline, best = trials[0].metrics(), trials[-1].metrics()
    assert baseline.value < 0.5 and best.value >= 0.9 and baseline.source == best.source == "stdout"
    assert best.framework == "torch" and (trials[-1].dir / "model.pt").exists()
    diff = (trials[-1].dir / "model.diff").read_text()
    assert "+    nn.Linear(64, 64),  # a narrow hidden layer\n" in diff and "+    nn.Linear(64, 10),\n" in diff
    assert "+EPOCHS = 3\n" in diff
    assert (SCRIPTS / "torch_digits_mlp.py").read_bytes() == before  # the user's file is never written
