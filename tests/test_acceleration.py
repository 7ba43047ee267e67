"""Speed settings leave the model's function alone and do what they claim."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from npf.acceleration import THP_POLICY, CudaGraphModel, _glibc
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


# Also process-wide, and only before the process's first tensor (torch reads the setting
# once): a 64 MiB tensor's memory is then page-aligned and marked for huge pages ("hg" in
# its mapping's VmFlags); asked too late, the setting says it did not take effect.
HUGE_PAGES = textwrap.dedent(
    """
    import re
    import sys
    import torch
    from pathlib import Path
    from npf.acceleration import back_cpu_tensors_with_huge_pages

    def huge(tensor):
        address = tensor.data_ptr()
        smaps = Path("/proc/self/smaps").read_text()
        for start, end, flags in re.findall(
            r"^([0-9a-f]+)-([0-9a-f]+) .*?^VmFlags:(.*?)$", smaps, re.M | re.S
        ):
            if int(start, 16) <= address < int(end, 16):
                return address % 4096 == 0 and "hg" in flags.split()
        return False

    if sys.argv[1] == "late":
        torch.empty(2**24)
    took_effect = back_cpu_tensors_with_huge_pages()
    print(took_effect, huge(torch.empty(2**24)))
    """
)


@pytest.mark.skipif(
    not THP_POLICY.is_file() or "[never]" in THP_POLICY.read_text(),
    reason="needs Linux with transparent huge pages offered (policy always or madvise)",
)
@pytest.mark.parametrize(("when", "huge"), [("first", "True"), ("late", "False")])
def test_large_cpu_tensors_get_huge_pages(when: str, huge: str):
    environment = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    result = subprocess.run(
        [sys.executable, "-c", HUGE_PAGES, when],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [huge, huge]
