"""Training with validation, best-checkpoint selection, history and resume.

Defaults are the report's settings: SGD, learning rate 1e-3 decaying
exponentially to 0.1x at the last epoch, 50 epochs, batch 32, loss = NLL summed
over target pixels, 10 % of the training set for validation, the checkpoint of
lowest validation loss kept.

Every epoch writes ``last.pt`` (everything needed to resume: weights,
optimiser, scheduler, random state, history) and ``history.json`` atomically;
an improved validation loss also writes ``best.pt``. ``last.pt`` (with
``history.json``) is also written in the middle of an epoch every
``checkpoint_every_s`` seconds and when ``time_limit_s`` runs out, so a killed
run loses at most that much work; a SIGTERM or a first Ctrl-C (SIGINT) loses nothing:
the step under way finishes, ``last.pt`` is written and ``fit`` returns as at the time
limit (a second signal acts as usual). A run started again with ``resume=True``
continues at the step where ``last.pt`` was written and ends with the same
weights as an uninterrupted run: each epoch's shuffling and context masks come
from a generator seeded by ``(seed, epoch)`` whose state is saved with the
checkpoint.

The defaults are the fastest settings measured on the project's 2-core CPU
(``benchmarks/train_speed.py``), each switchable: bf16 autocast with fp32
weights and loss where the hardware multiplies bf16 natively (``precision="auto"``:
CUDA, or a CPU with AVX-512 BF16 or AMX; elsewhere fp32, since emulated bf16 made a
step several times slower on an AVX2-only EPYC), ``torch.compile`` of the model, which fuses
batch norms, ReLUs and additions (``compile``; skipped where no C++ compiler is
installed), and large CPU tensors served from glibc's heap (``cpu_heap``, see
:func:`npf.acceleration.serve_cpu_tensors_from_heap`). Together they made a
training step about 1.8x (32 x 32) to 2.3x (64 x 64) faster than fp32 eager.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from npf import REPO_ROOT
from npf.acceleration import native_bf16, serve_cpu_tensors_from_heap
from npf.data.base import GridDataset, Splits
from npf.loss import gaussian_nll
from npf.model import GridConvCNP, add_raw_context_weights
from npf.scaling import ValueScaling
from npf.tasks import ContextSampler

OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("fp32", "bf16")
#: the pixels the training loss sums over: every valid one, the context included (the
#: report's), or only the held-out ones (valid, not context)
LOSS_PIXELS = ("all", "heldout")
#: ``precision`` values of a training run: ``"auto"`` picks one of :data:`PRECISIONS`
TRAIN_PRECISIONS = ("auto", *PRECISIONS)
#: signals that end ``Trainer.fit`` after the step under way, with ``last.pt`` written
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    hole_tasks: float = 0.0
    loss_pixels: str = "all"
    init_checkpoint: str | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    grad_clip: float | None = None
    compile: bool = True
    cpu_heap: bool = True
    checkpoint_every_s: float = 600.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; valid: {OPTIMIZERS}")
        if self.loss_pixels not in LOSS_PIXELS:
            raise ValueError(
                f"unknown loss_pixels {self.loss_pixels!r}; valid: {', '.join(LOSS_PIXELS)}"
            )
        if self.precision not in TRAIN_PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; valid: {', '.join(TRAIN_PRECISIONS)}"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must lie in (0, 1], got {self.lr_decay}")
        if not self.checkpoint_every_s > 0:
            raise ValueError(f"checkpoint_every_s must be positive, got {self.checkpoint_every_s}")
        self.sampler()  # validates the context settings

    def sampler(self) -> ContextSampler:
        """The training tasks' context sampler."""
        return ContextSampler(self.min_context, self.max_context, hole_tasks=self.hole_tasks)


#: settings that may differ between a run and its resumption: speed, not results, and the
#: weights a run starts from (a resumption takes its weights from last.pt)
RESUMABLE_CHANGES = (
    "device",
    "precision",
    "compile",
    "cpu_heap",
    "checkpoint_every_s",
    "init_checkpoint",
)


#: every this many training steps, the step's loss and gradient norm go to ``History.steps``
LOG_EVERY_STEPS = 10
#: ... and every one of the first this many steps of a run (where a fast divergence shows)
LOG_FIRST_STEPS = 50


@dataclass
class History:
    """Per-epoch record of a run, and the loss and gradient norm of each of the first
    :data:`LOG_FIRST_STEPS` training steps and of every :data:`LOG_EVERY_STEPS`-th after
    (where a run diverges shows there)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)

    @property
    def best_epoch(self) -> int | None:
        if not self.epochs:
            return None
        return min(self.epochs, key=lambda e: e["val_loss"])["epoch"]

    def to_json(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "steps": self.steps}


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` picks bf16 autocast where it multiplies natively (CUDA, or a CPU with
    AVX-512 BF16 or AMX), else fp32."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" or native_bf16() else "fp32"


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
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # a full disk surfaces as RuntimeError in torch
        tmp.unlink(missing_ok=True)
        raise OSError(
            f"could not write checkpoint {path}: {error}; free disk space or choose another "
            "out_dir (the previous checkpoint is intact)"
        ) from error


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: strict_json(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(value) for value in obj]
    return obj


def write_json_atomic(obj: Any, path: Path) -> None:
    """Write strict JSON (non-finite numbers as ``null``) to ``path`` atomically."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(strict_json(obj), indent=2, allow_nan=False))
    os.replace(tmp, path)


@dataclass
class _EpochState:
    """Where an epoch stands: steps done, running sums and the sampling generator."""

    generator: torch.Generator
    order: torch.Tensor
    step: int = 0
    total: float = 0.0
    total_per_pixel: float = 0.0
    seconds: float = 0.0


class Trainer:
    """Fits a :class:`GridConvCNP` on a :class:`Splits` and keeps its checkpoints.

    Args:
        model: the model to train (its weights are updated in place).
        splits: train / validation data (test is not touched).
        config: hyper-parameters.
        out_dir: where ``last.pt``, ``best.pt`` and ``history.json`` go.
        data_settings: what else defines the run's data (loader options,
            ``max_train``, ``val_fraction``...); stored in checkpoints and compared
            on resume.
    """

    def __init__(
        self,
        model: GridConvCNP,
        splits: Splits,
        config: TrainConfig,
        out_dir: str | Path,
        data_settings: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.model = model.to(self.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.splits = splits
        self.scaling = splits.train.scaling
        self.data_settings = dict(data_settings or {})
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(self.out_dir, os.W_OK):
            raise PermissionError(f"out_dir {self.out_dir} is not writable; choose another")
        self.cpu_heap = (
            config.cpu_heap and self.device.type == "cpu" and serve_cpu_tensors_from_heap()
        )
        self.compiled = config.compile and _cpp_compiler_available()
        if self.compiled:
            self.model.compile()  # in place: state_dict and checkpoints are unchanged
            # compiling on a machine without CUDA logs a warning about CUDA_HOME: not our concern
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        self.sampler = config.sampler()
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
        self.n_batches = math.ceil(len(self.train_values) / config.batch_size)
        self.source = splits.train.source

    @property
    def settings(self) -> dict[str, Any]:
        """The speed settings in effect (for the run record)."""
        return {
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "precision": self.precision,
            "compile": self.compiled,
            "cpu_heap": bool(self.cpu_heap),
            "checkpoint_every_s": self.config.checkpoint_every_s,
        }

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        if self.config.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.config.lr)
        return torch.optim.SGD(params, lr=self.config.lr, momentum=self.config.momentum)

    def _to_device(self, dataset: GridDataset) -> tuple[torch.Tensor, torch.Tensor]:
        return dataset.values.to(self.device), dataset.valid.to(self.device)

    def _forward(
        self, values: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scaled values and the model's mean and std (fp32), all in model units."""
        y, _ = self.scaling.to_model(values, context)
        autocast = torch.autocast(
            self.device.type,
            dtype=torch.bfloat16,
            enabled=self.precision == "bf16",
            cache_enabled=False,  # required under CUDA graphs, harmless elsewhere
        )
        with autocast:
            mean, std = self.model(y, context)
        return y, mean.float(), std.float()

    def _loss(
        self, values: torch.Tensor, valid: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y, mean, std = self._forward(values, context)
        return gaussian_nll(mean, std, y, self._loss_targets(valid, context))

    def _loss_targets(self, valid: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The pixels the loss sums over (``config.loss_pixels``)."""
        return valid & ~context if self.config.loss_pixels == "heldout" else valid

    # -- checkpoints -------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        """Everything that defines the run; a resumption must match it."""
        train_config = {
            key: value for key, value in asdict(self.config).items() if key not in RESUMABLE_CHANGES
        }
        return {
            "dataset": self.splits.train.name,
            "n_train": len(self.train_values),
            "n_val": len(self.val_values),
            "model_config": model_kwargs(self.model),
            "scaling": asdict(self.scaling),
            "data_settings": self.data_settings,
            "train_config": train_config,
        }

    def _checkpoint(self, epoch: int, state: _EpochState | None = None) -> dict[str, Any]:
        """``epoch`` is the last finished epoch; ``state`` the one under way, if any."""
        checkpoint = {
            "epoch": epoch,
            "model_config": model_kwargs(self.model),
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict(),
            "history": self.history.to_json(),
            "train_config": asdict(self.config),
            "scaling": asdict(self.scaling),
            "dataset": self.splits.train.name,
            "identity": self._identity(),
            "in_epoch": None,
        }
        if state is not None and state.step > 0:
            checkpoint["in_epoch"] = {
                "step": state.step,
                "generator_state": state.generator.get_state(),
                "total": state.total,
                "total_per_pixel": state.total_per_pixel,
                "seconds": state.seconds,
            }
        return checkpoint

    def _save_last(self, checkpoint: dict[str, Any]) -> None:
        """``last.pt`` and, beside it, the same history as ``history.json``."""
        _save_atomic(checkpoint, self.out_dir / "last.pt")
        write_json_atomic(self.history.to_json(), self.out_dir / "history.json")

    def _check_identity(self, path: Path, saved: dict[str, Any] | None) -> None:
        if saved is None:
            raise ValueError(
                f"cannot resume from {path}: it predates run identities; use another out_dir "
                "or resume=False"
            )
        # a checkpoint that predates a setting was trained with the setting's default
        defaults = {
            key: value
            for key, value in asdict(TrainConfig()).items()
            if key not in RESUMABLE_CHANGES
        }
        saved = {
            **saved,
            "train_config": {**defaults, **saved.get("train_config", {})},
            "model_config": GridConvCNP.complete_config(saved.get("model_config", {})),
        }
        mismatches = _differences(saved, self._identity())
        if mismatches:
            key, old, new = mismatches[0]
            raise ValueError(
                f"cannot resume from {path}: it was trained with {key}={old!r}, this run asks "
                f"for {new!r}; use another out_dir or resume=False"
            )

    def _restore(self) -> tuple[int, dict[str, Any] | None]:
        """Load ``last.pt`` if present; return the epoch to run and its saved progress."""
        path = self.out_dir / "last.pt"
        if not path.exists():
            return 1, None
        try:
            checkpoint = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as error:  # torch raises RuntimeError, EOFError, pickle errors...
            raise ValueError(
                f"cannot resume: {path} is unreadable ({type(error).__name__}); delete it to "
                "start afresh, or restore it from the repository"
            ) from error
        self._check_identity(path, checkpoint.get("identity"))
        self.model.load_state_dict(checkpoint["model_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.scheduler.load_state_dict(checkpoint["scheduler_state"])
        self.history = History(
            checkpoint["history"]["epochs"], checkpoint["history"].get("steps", [])
        )
        return checkpoint["epoch"] + 1, checkpoint.get("in_epoch")

    def _warm_start(self, path: Path) -> None:
        """Start from the weights of another run's checkpoint (fine-tuning): same
        architecture (or the same without ``raw_context``, widened by
        :func:`~npf.model.add_raw_context_weights`) and value scaling, fresh optimizer and
        schedule. A relative path that is not found from the working directory is taken
        from the repository root (as the study's notebooks give it), and is recorded as
        given, with no machine's paths."""
        if not path.is_absolute() and not path.is_file():
            path = REPO_ROOT / path
        if not path.is_file():
            raise FileNotFoundError(f"init_checkpoint {path} not found")
        checkpoint = torch.load(path, map_location=self.device, weights_only=False)
        theirs = GridConvCNP.complete_config(checkpoint.get("model_config", {}))
        state = checkpoint["model_state"]
        if self.model.config["raw_context"] and not theirs["raw_context"]:
            # a model without the raw-context inputs, widened: it starts where that one was
            theirs["raw_context"] = True
            state = add_raw_context_weights(state)
        for key, ours, saved in (
            ("model_config", model_kwargs(self.model), theirs),
            ("scaling", asdict(self.scaling), checkpoint.get("scaling")),
        ):
            if saved != ours:
                raise ValueError(f"init_checkpoint {path} has {key} {saved}, this run {ours}")
        self.model.load_state_dict(state)

    # -- epochs --------------------------------------------------------------
    def _epoch_state(self, epoch: int, saved: dict[str, Any] | None) -> _EpochState:
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train_values), generator=generator)
        state = _EpochState(generator, order)
        if saved is not None:
            generator.set_state(saved["generator_state"])
            state.step = saved["step"]
            state.total = saved["total"]
            state.total_per_pixel = saved["total_per_pixel"]
            state.seconds = saved["seconds"]
        return state

    def _train_steps(
        self,
        epoch: int,
        state: _EpochState,
        deadline: float,
        stop: StopRequest,
        progress: Callable[[int], None],
    ) -> bool:
        """Run the epoch's remaining steps; return False if stopped at ``deadline`` or by
        a signal."""
        self.model.train()
        last_save = time.perf_counter()
        while state.step < self.n_batches:
            step_start = time.perf_counter()
            values, valid = self._batch(state)
            context = self.sampler(valid.cpu(), state.generator).to(self.device)
            loss, per_pixel = self._loss(values, valid, context)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            logged = (epoch == 1 and state.step < LOG_FIRST_STEPS) or (
                state.step + 1
            ) % LOG_EVERY_STEPS == 0
            grad_norm = None
            if self.config.grad_clip is not None or logged:
                max_norm = self.config.grad_clip or math.inf  # inf: measure, do not clip
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
            value = loss.item()
            if logged or not math.isfinite(value):
                self.history.steps.append(
                    {
                        "epoch": epoch,
                        "step": state.step + 1,
                        "loss": value,
                        "grad_norm": None if grad_norm is None else grad_norm.item(),
                    }
                )
            if not math.isfinite(value):
                write_json_atomic(self.history.to_json(), self.out_dir / "history.json")
                saved = (
                    "last.pt in the run folder keeps the last saved state"
                    if (self.out_dir / "last.pt").exists()
                    else "no checkpoint was saved before it"
                )
                raise FloatingPointError(
                    f"training diverged in epoch {epoch}, batch {state.step + 1} (loss {value}); "
                    f"lower the learning rate, set grad_clip or use optimizer='adam'; {saved}"
                )
            self.optimizer.step()
            state.step += 1
            state.total += value
            state.total_per_pixel += per_pixel.item()
            now = time.perf_counter()
            state.seconds += now - step_start
            progress(len(values))
            out_of_time = now >= deadline or stop.received is not None
            if state.step < self.n_batches and (
                out_of_time or now - last_save >= self.config.checkpoint_every_s
            ):
                self._save_last(self._checkpoint(epoch - 1, state))
                last_save = time.perf_counter()
                if out_of_time:
                    return False
        return True

    def _batch(self, state: _EpochState) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's rasters: new draws from the data set's source, else the next slice."""
        size = self.config.batch_size
        if self.source is not None:
            n = min(size, len(self.train_values) - state.step * size)
            values, valid = self.source.draw(n, state.generator)
            return values.to(self.device), valid.to(self.device)
        index = state.order[state.step * size : (state.step + 1) * size].to(self.device)
        return self.train_values[index], self.train_valid[index]

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Scores on the validation set (fixed contexts).

        ``val_loss``: the training objective, NLL summed over the valid pixels (the context
        included unless ``loss_pixels`` is ``"heldout"``) and averaged over images;
        ``val_nll_per_pixel``: the same per pixel.
        On held-out pixels only (valid, not context), pooled over the set and in the
        data's units, as the test scores are: ``val_heldout_nll`` (nats per pixel) and
        ``val_heldout_rmse``.
        """
        self.model.eval()
        total = total_per_pixel = heldout_nll = squared_error = heldout = 0.0
        n = len(self.val_values)
        for start in range(0, n, self.config.batch_size):
            batch = slice(start, start + self.config.batch_size)
            values, valid = self.val_values[batch], self.val_valid[batch]
            context = self.val_context[batch]
            y, mean, std = self._forward(values, context)
            loss, per_pixel = gaussian_nll(mean, std, y, self._loss_targets(valid, context))
            total += loss.item() * len(values)
            total_per_pixel += per_pixel.item() * len(values)
            targets = (valid & ~context).expand_as(y)
            nll, _ = gaussian_nll(mean, std, y, targets)
            heldout_nll += nll.item() * len(values)  # summed over the batch's targets
            # in float64: a diverging model's means of 1e32 square past float32's range
            error = torch.where(targets, y - mean, 0.0).double()
            squared_error += error.square().sum().item()
            heldout += targets.sum().item()
        scale = self.scaling.scale
        return {
            "val_loss": total / n,
            "val_nll_per_pixel": total_per_pixel / n,
            "val_heldout_nll": heldout_nll / max(heldout, 1) + math.log(scale),
            "val_heldout_rmse": math.sqrt(squared_error / max(heldout, 1)) * scale,
        }

    def fit(
        self, resume: bool = True, progress: bool = True, time_limit_s: float | None = None
    ) -> History:
        """Train until ``config.epochs``, or until the first step past ``time_limit_s``.

        A SIGTERM or SIGINT stops it like the time limit does (see the module's docstring).
        Returns the history; ``best.pt`` holds the weights of the best epoch and
        ``last.pt`` the state to resume from.
        """
        first, saved = self._restore() if resume else (1, None)
        if first == 1 and saved is None and self.config.init_checkpoint:
            self._warm_start(Path(self.config.init_checkpoint))
        started = time.perf_counter()
        deadline = math.inf if time_limit_s is None else started + time_limit_s
        remaining = range(first, self.config.epochs + 1)
        done = saved["step"] if saved else 0
        bar = tqdm(
            total=len(remaining) * len(self.train_values),
            initial=min(done * self.config.batch_size, len(self.train_values)),
            desc=f"{self.splits.train.name} epochs {first}-{self.config.epochs}",
            disable=not progress or not remaining,
            unit="img",
            unit_scale=False,
        )
        best = min(
            (e["val_loss"] for e in self.history.epochs if _finite(e["val_loss"])),
            default=math.inf,
        )
        with StopRequest() as stop:
            for epoch in remaining:
                state = self._epoch_state(epoch, saved if epoch == first else None)
                lr = self.optimizer.param_groups[0]["lr"]
                if not self._train_steps(epoch, state, deadline, stop, bar.update):
                    break
                validation_start = time.perf_counter()
                scores = self.validate()
                val_loss = scores["val_loss"]
                if not (math.isfinite(val_loss) and math.isfinite(scores["val_nll_per_pixel"])):
                    raise FloatingPointError(
                        f"validation loss of epoch {epoch} is not finite ({val_loss}); the run "
                        f"stops here and {self.out_dir / 'last.pt'} keeps epoch {epoch - 1}; "
                        "lower the learning rate, set grad_clip or use optimizer='adam'"
                    )
                self.scheduler.step()
                seconds = state.seconds + time.perf_counter() - validation_start
                self.history.epochs.append(
                    {
                        "epoch": epoch,
                        "train_loss": state.total / self.n_batches,
                        "train_nll_per_pixel": state.total_per_pixel / self.n_batches,
                        **scores,
                        "lr": lr,
                        "seconds": seconds,
                        "train_images_per_s": len(self.train_values) / state.seconds,
                    }
                )
                bar.set_postfix(train=f"{state.total / self.n_batches:.1f}", val=f"{val_loss:.1f}")
                checkpoint = self._checkpoint(epoch)
                if val_loss < best:
                    best = val_loss
                    _save_atomic({**checkpoint, "optimizer_state": None}, self.out_dir / "best.pt")
                self._save_last(checkpoint)
                if time.perf_counter() >= deadline or stop.received is not None:
                    break
        bar.close()
        if stop.received is not None:
            print(
                f"{stop.received}: training stopped, {self.out_dir / 'last.pt'} written; "
                "fit(resume=True) continues from it"
            )
        return self.history


class StopRequest:
    """Turns the first of :data:`STOP_SIGNALS` into a request to stop, for ``with`` blocks.

    The handler only notes the signal's name in ``received`` and puts the previous handlers
    back, so a second signal acts as it would have without this (a second Ctrl-C raises
    ``KeyboardInterrupt`` at once). Python installs handlers only in the main thread:
    elsewhere this does nothing and signals act as usual.
    """

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _handle(self, number: int, frame: object) -> None:
        self.received = signal.Signals(number).name
        self._restore()

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            # None: a handler installed from C, which Python cannot put back; the default
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous = {}


def _cpp_compiler_available() -> bool:
    """``torch.compile`` generates C++ on the CPU: it needs a compiler on the PATH."""
    return any(shutil.which(name) for name in ("c++", "g++", "clang++"))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _differences(
    saved: dict[str, Any], current: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """(key, saved value, current value) for every leaf that differs."""
    found = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        name = f"{prefix}{key}"
        if isinstance(old, dict) and isinstance(new, dict):
            found += _differences(old, new, name + ".")
        elif old != new:
            found.append((name, old, new))
    return found
