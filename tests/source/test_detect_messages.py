"""Exit 4's advice fits what was found: a file that trains nothing is told to point at the right file."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlci.core.errors import DetectionError
from mlci.source.detect import detect


@pytest.mark.parametrize("source, imports", [
    ("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('a.png')\n", "(imports: matplotlib)"),
    ("print('hello')\n", "(no imports)"),
])
def test_a_file_that_trains_nothing_is_not_told_to_map_an_image(tmp_path: Path, source: str, imports: str):
    path = tmp_path / "plot.py"
    path.write_text(source)
    with pytest.raises(DetectionError) as info:
        detect(path)
    assert info.value.exit_code == 4
    assert str(info.value) == (
        f"{path}: unsupported model code: no scikit-learn, Keras or PyTorch model is built or trained here "
        f"{imports}; point mlci at the file that builds and trains the model (scikit-learn, Keras or PyTorch), "
        "or name it in mlci.toml: entry = \"<file>.py\"")
    assert "map an image" not in str(info.value) and "python" not in str(info.value).split("; ")[-1]
