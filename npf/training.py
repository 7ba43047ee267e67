"""Training with validation, best-checkpoint selection, history and resume.

Defaults are the report's settings: SGD, learning rate 1e-3 decaying
exponentially to 0.1x at the last epoch, 50 epochs, batch 32, loss = NLL summed
over target pixels, 10 % of the training set for validation, the checkpoint of
lowest validation loss kept.

Every epoch writes ``last.pt`` (everything needed to resume: weights,
optimiser, scheduler, random state, history) and ``history.json`` atomically;
an improved validation loss also writes ``best.pt``. A run started again with
``resume=True`` continues after the last finished epoch and ends with the same
weights as an uninterrupted run: each epoch's shuffling and context masks come
from a generator seeded by ``(seed, epoch)``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from npf import REPO_ROOT
from npf.data.base import GridDataset, Splits
from npf.loss import gaussian_nll
from npf.model import GridConvCNP
from npf.scaling import ValueScaling
from npf.tasks import ContextSampler

OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Hyper-parameters of a run (defaults: the report's)."""

    epochs: int = 50
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 1e-3
    lr_decay: float = 0.1
    momentum: float = 0.0
    min_context: float = 0.0
    max_context: float = 0.3
    seed: int = 0
    device: str = "auto"
    precision: str = "fp32"
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {OPTIMIZERS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {PRECISIONS}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        ContextSampler(self.min_context, self.max_context)  # validates the bounds


@dataclass
class History:
    """Per-epoch record of a run."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    @property
    def best_epoch(self) -> int | None:
        if not self.epochs:
            return None
        return min(self.epochs, key=lambda e: e["val_loss"])["epoch"]

    def to_json(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch}


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_run_dir(dataset: str) -> Path:
    """``runs/<dataset>`` in the repository."""
    return REPO_ROOT / "runs" / dataset


def build_model(y_channels: int, seed: int = 0, **model_kwargs: Any) -> GridConvCNP:
    """A freshly initialised model; the same seed gives the same weights."""
    torch.manual_seed(seed)
    return GridConvCNP(y_channels=y_channels, **model_kwargs)


def model_kwargs(model: GridConvCNP) -> dict[str, Any]:
    """The constructor arguments a checkpoint needs to rebuild ``model``."""
    return dict(model.config)


def load_model(
    path: str | Path, device: str = "cpu"
) -> tuple[GridConvCNP, ValueScaling, dict[str, Any]]:
    """Rebuild a model from a ``best.pt``/``last.pt`` checkpoint, in eval mode."""
    checkpoint = torch.load(path, map_location=resolve_device(device), weights_only=False)
    model = GridConvCNP(**checkpoint["model_config"])
    model.load_state_dict(checkpoint["model_state"])
    model.to(resolve_device(device)).eval()
    return model, ValueScaling(**checkpoint["scaling"]), checkpoint


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


class Trainer:
    """Fits a :class:`GridConvCNP` on a :class:`Splits` and keeps its checkpoints.

    Args:
        model: the model to train (its weights are updated in place).
        splits: train / validation data (test is not touched).
        config: hyper-parameters.
        out_dir: where ``last.pt``, ``best.pt`` and ``history.json`` go.
    """

    def __init__(
        self, model: GridConvCNP, splits: Splits, config: TrainConfig, out_dir: str | Path
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.splits = splits
        self.scaling = splits.train.scaling
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.sampler = ContextSampler(config.min_context, config.max_context)
        self.optimizer = self._make_optimizer()
        gamma = config.lr_decay ** (1 / max(config.epochs - 1, 1))
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma)
        self.history = History()
        # The data live on the training device for the whole run: no loader stalls.
        self.train_values, self.train_valid = self._to_device(splits.train)
        self.val_values, self.val_valid = self._to_device(splits.val)
        self.val_context = self.sampler(
            splits.val.valid, torch.Generator().manual_seed(config.seed + 10_000)
        ).to(self.device)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        if self.config.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.config.lr)
        return torch.optim.SGD(params, lr=self.config.lr, momentum=self.config.momentum)

    def _to_device(self, dataset: GridDataset) -> tuple[torch.Tensor, torch.Tensor]:
        return dataset.values.to(self.device), dataset.valid.to(self.device)

    def _loss(
        self, values: torch.Tensor, valid: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y, _ = self.scaling.to_model(values, context)
        autocast = torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=self.config.precision == "bf16",
            cache_enabled=False,  # required under CUDA graphs, harmless elsewhere
        )
        with autocast:
            mean, std = self.model(y, context)
        return gaussian_nll(mean.float(), std.float(), y, valid)

    # -- checkpoints -------------------------------------------------------
    def _checkpoint(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model_config": model_kwargs(self.model),
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "history": self.history.to_json(),
            "train_config": asdict(self.config),
            "scaling": asdict(self.scaling),
            "dataset": self.splits.train.name,
        }

    def _restore(self) -> int:
        """Load ``last.pt`` if present; return the first epoch still to run."""
        path = self.out_dir / "last.pt"
        if not path.exists():
            return 1
        checkpoint = torch.load(path, map_location=self.device, weights_only=False)
        saved = checkpoint["train_config"]
        for key in ("optimizer", "lr", "lr_decay", "epochs", "batch_size", "seed"):
            if saved[key] != getattr(self.config, key):
                raise ValueError(
                    f"cannot resume from {path}: it was trained with {key}={saved[key]!r}, "
                    f"this run asks for {getattr(self.config, key)!r}; use another out_dir "
                    "or resume=False"
                )
        self.model.load_state_dict(checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.scheduler.load_state_dict(checkpoint["scheduler_state"])
        self.history = History(checkpoint["history"]["epochs"])
        return checkpoint["epoch"] + 1

    # -- epochs --------------------------------------------------------------
    def _train_epoch(self, epoch: int, progress: Callable[[], None]) -> tuple[float, float]:
        self.model.train()
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train_values), generator=generator)
        total = total_per_pixel = 0.0
        n_batches = math.ceil(len(order) / self.config.batch_size)
        for b in range(n_batches):
            index = order[b * self.config.batch_size : (b + 1) * self.config.batch_size]
            index = index.to(self.device)
            values, valid = self.train_values[index], self.train_valid[index]
            context = self.sampler(valid.cpu(), generator).to(self.device)
            loss, per_pixel = self._loss(values, valid, context)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"training diverged in epoch {epoch}, batch {b + 1} (loss {value}); "
                    "lower the learning rate, set grad_clip or use optimizer='adam'"
                )
            total += value
            total_per_pixel += per_pixel.item()
            progress()
        return total / n_batches, total_per_pixel / n_batches

    @torch.no_grad()
    def validate(self) -> tuple[float, float]:
        """Mean summed NLL and NLL per pixel on the validation set (fixed contexts)."""
        self.model.eval()
        total = total_per_pixel = 0.0
        n = len(self.val_values)
        for start in range(0, n, self.config.batch_size):
            batch = slice(start, start + self.config.batch_size)
            loss, per_pixel = self._loss(
                self.val_values[batch], self.val_valid[batch], self.val_context[batch]
            )
            size = len(self.val_values[batch])
            total += loss.item() * size
            total_per_pixel += per_pixel.item() * size
        return total / n, total_per_pixel / n

    def fit(
        self, resume: bool = True, progress: bool = True, time_limit_s: float | None = None
    ) -> History:
        """Train until ``config.epochs`` (or until another epoch would pass ``time_limit_s``).

        Returns the history; ``best.pt`` holds the weights of the best epoch.
        """
        first = self._restore() if resume else 1
        started = time.perf_counter()
        n_batches = math.ceil(len(self.train_values) / self.config.batch_size)
        remaining = range(first, self.config.epochs + 1)
        bar = tqdm(
            total=len(remaining) * n_batches,
            desc=f"{self.splits.train.name} epochs {first}-{self.config.epochs}",
            disable=not progress or not remaining,
            unit="batch",
        )
        best = min((e["val_loss"] for e in self.history.epochs), default=math.inf)
        for epoch in remaining:
            epoch_start = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_per_pixel = self._train_epoch(epoch, lambda: bar.update())
            val_loss, val_per_pixel = self.validate()
            self.scheduler.step()
            seconds = time.perf_counter() - epoch_start
            self.history.epochs.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "train_nll_per_pixel": train_per_pixel,
                    "val_nll_per_pixel": val_per_pixel,
                    "lr": lr,
                    "seconds": seconds,
                }
            )
            bar.set_postfix(train=f"{train_loss:.1f}", val=f"{val_loss:.1f}")
            checkpoint = self._checkpoint(epoch)
            if val_loss < best:
                best = val_loss
                _save_atomic({**checkpoint, "optimizer_state": None}, self.out_dir / "best.pt")
            _save_atomic(checkpoint, self.out_dir / "last.pt")
            _write_json_atomic(self.history.to_json(), self.out_dir / "history.json")
            elapsed = time.perf_counter() - started
            if time_limit_s is not None and elapsed + seconds > time_limit_s:
                break
        bar.close()
        return self.history
