"""Speed settings leave the model's function alone and do what they claim."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from npf.acceleration import CudaGraphModel, _glibc
from npf.model import GridConvCNP

REPO = Path(__file__).resolve().parents[1]


def test_cuda_graph_wrapper_runs_the_model_eagerly_off_cuda():
    torch.manual_seed(0)
    model = GridConvCNP(y_channels=1, hidden_channels=8, n_blocks=1, decoder_layers=1)
    wrapped = CudaGraphModel(model)
    y = torch.randn(2, 1, 8, 8)
    context = torch.rand(2, 1, 8, 8) < 0.3
    for got, want in zip(wrapped(y, context), model(y, context), strict=True):
        assert torch.equal(got, want)
    # Checkpoints should hold ``wrapped.model.state_dict()``: the wrapper adds a prefix.
    assert list(wrapped.state_dict()) == ["model." + name for name in model.state_dict()]


# Process-wide and irreversible, so it runs in a subprocess: by default glibc maps a
# 64 MiB block afresh (outside its heap) and unmaps it when freed; afterwards the block
# comes from the heap, where freed memory stays mapped for reuse.
IN_HEAP = textwrap.dedent(
    """
    import torch
    from pathlib import Path
    from npf.acceleration import serve_cpu_tensors_from_heap

    def in_heap(tensor):
        for line in Path("/proc/self/maps").read_text().splitlines():
            if line.endswith("[heap]"):
                start, end = (int(a, 16) for a in line.split()[0].split("-"))
                if start <= tensor.data_ptr() < end:
                    return True
        return False

    before = in_heap(torch.empty(2**24))
    assert serve_cpu_tensors_from_heap()
    print(before, in_heap(torch.empty(2**24)))
    """
)


@pytest.mark.skipif(_glibc() is None, reason="needs Linux with glibc")
def test_large_cpu_tensors_move_into_the_heap():
    result = subprocess.run(
        [sys.executable, "-c", IN_HEAP], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True"]
