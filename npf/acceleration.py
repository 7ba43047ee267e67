"""Settings that make a training step faster without changing what it computes.

* :class:`CudaGraphModel`: at the report's batch of 32 small rasters a training
  step launches a few hundred short kernels, so on a fast GPU the host's launch
  overhead, not the arithmetic, sets the pace. The wrapper captures the model's
  forward and backward once per batch shape (``torch.cuda.make_graphed_callables``)
  and replays them; the loss, ``zero_grad``, gradient clipping and the optimizer
  step stay ordinary eager code, so learning-rate schedules and checkpoints work
  unchanged.
* :func:`serve_cpu_tensors_from_heap`: on CPU, glibc gives every allocation above
  32 MiB fresh ``mmap`` pages and unmaps them when freed, so each 64 MiB
  activation of a 32 x 128 x 64 x 64 batch page-faults again at every step. On a
  2-core EPYC this more than halved the 64 x 64 training step (single thread,
  ``benchmarks/train_speed.py``); at 32 x 32 the activations are smaller and
  nothing changes.
* :func:`back_cpu_tensors_with_huge_pages`: asks torch's CPU allocator to mark
  large blocks for transparent huge pages (``madvise``), so that a fresh block costs
  one page fault per 2 MiB instead of one per 4 KiB, and freed memory still goes back
  to the system. On 2 Zen 3 cores it took one 512 x 512 window of
  the DEM model from 6.3 s to 3.8 s (the heap: 2.9-3.2 s, at 1 GiB more peak memory
  over a scene, ``benchmarks/fill_speed.py``).
* :func:`native_bf16`: whether bf16 autocast can pay off on this CPU at all (the fill
  command's ``--precision auto``).

The other GPU lever, ``model.compile(mode="reduce-overhead")`` (kernel fusion
plus CUDA graphs), needs nothing from this module; ``benchmarks/train_speed.py``
measures all of them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path

import torch
from torch import nn

_M_TRIM_THRESHOLD = -1  # mallopt: free heap top above this goes back to the OS
_M_MMAP_MAX = -4  # mallopt: how many blocks glibc may serve by mmap


def serve_cpu_tensors_from_heap() -> bool:
    """From now on, glibc serves large blocks from its heap and keeps freed ones for reuse.

    Affects the whole process for the rest of its life (glibc cannot restore its
    adaptive defaults): call it once, in a process that trains on the CPU. The
    process keeps the memory its heap grew to. Returns whether it took effect
    (Linux with glibc only; elsewhere it changes nothing).
    """
    libc = _glibc()
    if libc is None:
        return False
    return libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**30) == 1


#: the kernel's transparent huge page policy ("[madvise]": only where a program asks)
THP_POLICY = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def back_cpu_tensors_with_huge_pages() -> bool:
    """From now on, torch backs large CPU tensors with transparent huge pages.

    Sets ``THP_MEM_ALLOC_ENABLE=1``, which torch's CPU allocator reads once, at the
    process's first tensor allocation: call this before any tensor is made. Results do
    not change, only how fast fresh memory is paged in. Returns whether it took effect
    (a probe block is marked for huge pages): not where the kernel offers none (policy
    ``never``, or not Linux) or where a tensor was allocated before.
    """
    try:
        policy = THP_POLICY.read_text()
    except OSError:
        return False
    if "[never]" in policy:
        return False
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    probe = torch.empty(2**20)  # 4 MiB: above torch's 2 MiB threshold for huge pages
    return "hg" in _mapping_flags(probe.data_ptr())


def _mapping_flags(address: int) -> list[str]:
    """The ``VmFlags`` of the memory mapping that holds ``address`` (``hg``: marked for
    huge pages by ``madvise``), from ``/proc/self/smaps``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head, *rest = line.split()
        if "-" in head and not head.endswith(":"):
            start, end = (int(bound, 16) for bound in head.split("-"))
            inside = start <= address < end
        elif inside and head == "VmFlags:":
            return rest
    return []


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), so that bf16
    autocast speeds the model up rather than emulating the format (Linux flags only)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
    except (OSError, TypeError):
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None  # glibc, not musl


class _Call(nn.Module):
    """``model(y, context_mask)`` as a module of its own, so that each capture patches
    this wrapper's ``forward`` and never the model's."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, y: torch.Tensor, context_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(y, context_mask)


class CudaGraphModel(nn.Module):
    """Wraps a model ``(y, context_mask) -> (mean, std)``; training calls replay CUDA graphs.

    A call on CUDA with gradients enabled and the wrapped model in training mode (its
    own flag decides: switching either the wrapper or the model works) replays the
    graph captured for its input shapes, dtypes and autocast dtype, capturing it on
    first sight (a few extra forward/backward passes; batch-norm statistics are
    restored afterwards, so capturing leaves the model as it was). Other calls
    (evaluation, ``torch.no_grad``, CPU tensors) run the model eagerly. The outputs of a replay
    are overwritten by the next replay: compute the loss and call ``backward``
    before the next training call, as any training loop does.

    Autocast must be entered with ``cache_enabled=False`` (a CUDA-graph rule).
    The wrapped model stays reachable as ``.model`` (save its ``state_dict``).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._graphed: dict[tuple, nn.Module] = {}

    def forward(
        self, y: torch.Tensor, context_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not (self.model.training and torch.is_grad_enabled() and y.is_cuda):
            return self.model(y, context_mask)
        autocast = torch.is_autocast_enabled("cuda")
        key = (
            tuple(y.shape),
            y.dtype,
            tuple(context_mask.shape),
            torch.get_autocast_dtype("cuda") if autocast else None,
        )
        if key not in self._graphed:
            self._graphed[key] = self._capture(y, context_mask)
        return self._graphed[key](y, context_mask)

    def _capture(self, y: torch.Tensor, context_mask: torch.Tensor) -> nn.Module:
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        graphed = torch.cuda.make_graphed_callables(
            _Call(self.model), (y.detach().clone(), context_mask.clone())
        )
        with torch.no_grad():
            for name, buffer in self.model.named_buffers():
                buffer.copy_(buffers[name])
        return graphed
