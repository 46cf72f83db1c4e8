"""`mlci example`: the example models that ship inside mlci, listed and copied out (an installed mlci has no models/)."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from conftest import ROOT

from mlci.cli import main


def test_the_examples_are_the_checkouts_models_listed_by_name():
    listed = CliRunner().invoke(main, ["example"])
    assert listed.exit_code == 0, listed.output
    names = [line.split()[0] for line in listed.output.splitlines()]
    assert names == sorted(folder.name.replace("_", "-") for folder in (ROOT / "models").iterdir() if folder.is_dir())
    assert "mnist-cnn        A small convolutional network for handwritten digits" in listed.output


def test_an_example_is_copied_with_its_config_and_says_how_to_train_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(main, ["example", "mnist-cnn"])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == str(Path("mnist_cnn") / "mnist_cnn.py")
    assert "train it with: mlci run mnist_cnn/mnist_cnn.py" in done.stderr
    for name in ("mnist_cnn.py", "mlci.toml"):
        assert (tmp_path / "mnist_cnn" / name).read_bytes() == (ROOT / "models" / "mnist_cnn" / name).read_bytes()
    elsewhere = CliRunner().invoke(main, ["example", "mnist_sklearn", str(tmp_path / "new" / "knn")])
    assert elsewhere.exit_code == 0 and (tmp_path / "new" / "knn" / "mnist_sklearn.py").is_file()


def test_an_unknown_example_or_a_used_folder_is_one_line_and_exit_2(tmp_path):
    unknown = CliRunner().invoke(main, ["example", "resnet"])
    assert unknown.exit_code == 2
    assert unknown.stderr == ("mlci: error: no example model named 'resnet'; known examples: mnist-ann, mnist-cnn, "
                              "mnist-sklearn, mnist-torch; `mlci example` lists them\n")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    used = CliRunner().invoke(main, ["example", "mnist-cnn", str(tmp_path / "used")])
    assert used.exit_code == 2
    assert used.stderr == (f"mlci: error: {tmp_path / 'used'}: exists and is not an empty folder; name a new folder: "
                           "mlci example NAME DEST\n")
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.txt"]  # nothing of the user's is touched
