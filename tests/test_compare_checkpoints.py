"""scripts/compare_checkpoints.py scores checkpoints side by side on the same contexts."""

from __future__ import annotations

import importlib.util
import json

import pytest

from npf import REPO_ROOT
from npf.training import TrainConfig, Trainer, build_model

TINY_GP = {"n_train": 160, "n_test": 16, "size": 16, "length_scale_range": [3.0, 5.0]}


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location(
        "compare_checkpoints", REPO_ROOT / "scripts" / "compare_checkpoints.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_same_checkpoint_twice_differs_by_nothing(compare, tiny_gp, tmp_path) -> None:
    config = TrainConfig(compile=False, precision="fp32", epochs=1, batch_size=16, device="cpu")
    model = build_model(1, hidden_channels=16, n_blocks=2, kernel_size=5)
    Trainer(model, tiny_gp, config, tmp_path).fit(progress=False)
    best, out = str(tmp_path / "best.pt"), tmp_path / "table.md"
    compare(
        [
            "--dataset",
            "gp",
            "--options",
            json.dumps(TINY_GP),
            "--fractions",
            "0.1",
            "0.5",
            "--checkpoints",
            f"a={best}",
            f"b={best}",
            "--out",
            str(out),
        ]
    )
    text = out.read_text()
    assert text.count("| oracle |") == 2 and "Context 0.5 of the valid pixels" in text
    rows = [line for line in text.splitlines() if line.startswith("| b |")]
    assert len(rows) == 2 and all("| 0.0000 ± 0.0000 | 0% |" in row for row in rows)


@pytest.mark.parametrize("item", ["no-equals-sign", "=path", "oracle=path"])
def test_bad_checkpoint_names_are_refused(compare, item) -> None:
    with pytest.raises(SystemExit, match="checkpoint|NAME=PATH"):
        compare(["--dataset", "gp", "--checkpoints", item])
