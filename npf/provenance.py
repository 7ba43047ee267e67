"""What a result was computed on: date, machine, accelerator, versions, commit."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from npf import REPO_ROOT


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """Short hash of the checked-out commit, or None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: torch.device | str) -> dict[str, Any]:
    """A record of where and with what a computation runs."""
    device = torch.device(device)
    accelerator = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": str(device),
        "accelerator": accelerator,
        "cpu": _cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "commit": git_commit(),
    }


def describe(env: dict[str, Any]) -> str:
    """One line naming the hardware and software of ``env``."""
    hardware = env["accelerator"] or f"{env['cpu']} ({env['cpu_cores']} cores)"
    return (
        f"{hardware}, torch {env['torch']}, Python {env['python']}, "
        f"commit {env['commit']}, {env['date_utc']}"
    )
