"""Every method that predicts a raster from its context, behind one interface.

A :class:`Predictor` has a ``name``, says whether it is ``probabilistic`` and maps
interpolation :class:`Tasks` (values, validity and context of N rasters, numpy, in
the data's units) to a :class:`Prediction`: the mean and, when probabilistic, the
std of every pixel, plus diagnostics per image and channel where a method has
them (kriging's fitted variograms).

* :class:`ConvCNP`: a trained model with the value scaling stored in its checkpoint;
* :class:`Interpolation`: scipy's griddata, nearest / linear / cubic (:mod:`npf.baselines`);
* :class:`OrdinaryKriging`: a variogram fitted to each image's context (:mod:`npf.kriging`);
* :class:`GaussianProcessOracle`: the exact posterior, from a data set's known
  :class:`~npf.data.base.GaussianFieldTruth`.

:func:`default_predictors` picks the ones that apply to a data set.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from npf.baselines import BASELINES, interpolate
from npf.context import check_context, list_indices
from npf.data.base import GaussianFieldTruth, GridDataset
from npf.kriging import ordinary_kriging, simple_kriging
from npf.model import GridConvCNP
from npf.scaling import ValueScaling
from npf.tasks import HOLE_SHARES
from npf.training import PRECISIONS, load_model, resolve_device

#: the share of valid pixels training drew contexts up to when a checkpoint does not say
DEFAULT_MAX_CONTEXT = 0.3


@dataclass(frozen=True)
class Tasks:
    """N interpolation tasks: predict every pixel of each raster from its context.

    Attributes:
        values: float (N, C, H, W) in the data's units, NaN where not valid.
        valid: bool (N, H, W), pixels with a known value.
        context: bool (N, H, W), the valid pixels a predictor may read.
        images: (N,) ids of the rasters in their data set.
    """

    values: np.ndarray
    valid: np.ndarray
    context: np.ndarray
    images: np.ndarray

    def __post_init__(self) -> None:
        n, _, height, width = self.values.shape
        for name in ("valid", "context"):
            mask = getattr(self, name)
            if mask.dtype != np.bool_ or mask.shape != (n, height, width):
                raise ValueError(
                    f"{name} must be bool (N, H, W) = {(n, height, width)}, got "
                    f"{mask.dtype} {mask.shape}"
                )
        if len(self.images) != n:
            raise ValueError(f"{len(self.images)} image ids for {n} rasters")
        check_context(self.values, self.context[:, None])

    @classmethod
    def of_raster(cls, values: np.ndarray, context: np.ndarray) -> Tasks:
        """One single-band raster (H, W), valid where finite, with its context mask."""
        return cls(
            values=np.asarray(values, dtype=np.float32)[None, None],
            valid=np.isfinite(values)[None],
            context=np.asarray(context, dtype=bool)[None],
            images=np.zeros(1, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.values)

    def rasters(self) -> Iterator[tuple[int, int]]:
        """(image position, channel) of every single-band raster."""
        for i in range(len(self)):
            for c in range(self.values.shape[1]):
                yield i, c


@dataclass
class Prediction:
    """Mean and std (N, C, H, W; ``std`` is None for a deterministic method) and
    diagnostics: named arrays over (image, channel)."""

    mean: np.ndarray
    std: np.ndarray | None = None
    diagnostics: dict[str, np.ndarray] = field(default_factory=dict)


class Predictor(Protocol):
    """What the study asks of every method."""

    name: str
    probabilistic: bool

    def predict(self, tasks: Tasks, progress: bool = False) -> Prediction:
        """Every pixel of every task, from its context only."""
        ...


@torch.no_grad()
def convcnp_predict(
    model: torch.nn.Module,
    scaling: ValueScaling,
    values: torch.Tensor,
    context: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    bf16: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ConvCNP mean and std in physical units for rasters (N, C, H, W).

    ``model`` is a :class:`~npf.model.GridConvCNP` in eval mode (or its compiled
    form). ``context`` is a bool (N, 1, H, W) mask selecting finite values only
    (:func:`~npf.context.check_context`); every image needs a context pixel,
    since without one the model would return the data set's typical value as if
    it were a prediction. ``bf16`` runs the model under bf16 autocast (scaling and
    outputs stay fp32).
    """
    check_context(values.detach().cpu(), context.cpu())
    if (empty := ~context.flatten(1).any(1)).any():
        batch = list_indices(torch.nonzero(empty).ravel().tolist())
        raise ValueError(
            f"images {batch} of the batch have no context pixel: nothing to predict from"
        )
    model.eval()
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    means, stds = [], []
    for start in range(0, len(values), batch_size):
        y = values[start : start + batch_size].to(device)
        mask = context[start : start + batch_size].to(device)
        y_scaled, shift = scaling.to_model(y, mask)
        with autocast:
            mean, std = model(y_scaled, mask)
        mean, std = scaling.from_model(mean.float(), std.float(), shift)
        means.append(mean.cpu())
        stds.append(std.cpu())
    return torch.cat(means), torch.cat(stds)


@dataclass
class ConvCNP:
    """A trained ConvCNP and the value scaling it was trained with.

    ``checkpoint`` keeps the trainer's record (data set, epoch, training
    configuration) when the model comes from :meth:`load`. ``precision="bf16"``
    predicts under bf16 autocast and ``compile=True`` through ``torch.compile``
    (dynamic shapes; the first call compiles, which pays only over many or large
    rasters). On a 2-core CPU with native bf16, bf16 filled a 1,201 x 1,201 scene
    1.4x faster than fp32, within 0.7 m in the median void pixel
    (``benchmarks/fill_speed.py``).
    """

    model: GridConvCNP
    scaling: ValueScaling
    batch_size: int = 64
    device: str | torch.device = "cpu"
    checkpoint: dict[str, Any] = field(default_factory=dict, repr=False)
    precision: str = "fp32"
    compile: bool = False
    name: ClassVar[str] = "convcnp"
    probabilistic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}"
            )
        self._forward = torch.compile(self.model, dynamic=True) if self.compile else self.model

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "cpu",
        batch_size: int = 64,
        precision: str = "fp32",
        compile: bool = False,
    ) -> ConvCNP:
        """The model of a trainer's ``best.pt`` / ``last.pt``, in eval mode."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        model, scaling, checkpoint = load_model(path, device)
        return cls(
            model, scaling, batch_size, resolve_device(device), checkpoint, precision, compile
        )

    @property
    def dataset(self) -> str | None:
        """The data set the checkpoint was trained on, if it says."""
        return self.checkpoint.get("dataset")

    @property
    def max_context(self) -> float:
        """The largest share of valid pixels training gave as context (void tasks: all
        but the smallest share of holes)."""
        config = self.checkpoint.get("train_config", {})
        if config.get("hole_tasks"):
            return 1.0 - HOLE_SHARES[0]
        return float(config.get("max_context", DEFAULT_MAX_CONTEXT))

    def check_fits(self, dataset: GridDataset) -> None:
        """Raise ``ValueError`` unless the model was trained for ``dataset``'s rasters."""
        if self.dataset not in (None, dataset.name):
            raise ValueError(
                f"the checkpoint was trained on {self.dataset!r}, not {dataset.name!r}"
            )
        if self.model.y_channels != dataset.channels:
            raise ValueError(
                f"the checkpoint predicts {self.model.y_channels}-channel rasters, "
                f"{dataset.name!r} has {dataset.channels}"
            )

    def predict(self, tasks: Tasks, progress: bool = False) -> Prediction:
        del progress  # one batched pass: fast enough to need no bar
        values = torch.from_numpy(np.ascontiguousarray(tasks.values, dtype=np.float32))
        context = torch.from_numpy(tasks.context[:, None])
        mean, std = convcnp_predict(
            self._forward,
            self.scaling,
            values,
            context,
            self.batch_size,
            self.device,
            bf16=self.precision == "bf16",
        )
        return Prediction(mean.numpy(), std.numpy())


@dataclass(frozen=True)
class Interpolation:
    """Deterministic interpolation of the context by ``method`` (one of ``BASELINES``)."""

    method: str
    probabilistic: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.method not in BASELINES:
            raise ValueError(f"unknown interpolation {self.method!r}; valid: {BASELINES}")

    @property
    def name(self) -> str:
        return self.method

    def predict(self, tasks: Tasks, progress: bool = False) -> Prediction:
        mean = np.empty(tasks.values.shape, dtype=np.float32)
        for i, c in tqdm(list(tasks.rasters()), desc=self.method, disable=not progress):
            mean[i, c] = interpolate(tasks.values[i, c], tasks.context[i], self.method)
        return Prediction(mean)


@dataclass(frozen=True)
class OrdinaryKriging:
    """Ordinary kriging with a variogram fitted to each image's and channel's context.

    ``n_closest``: krige each pixel from its nearest context points only (global
    kriging when ``None``). Diagnostics: the fitted variograms, as
    ``variogram_<model|psill|range|nugget|flags>`` (``flags``: the parameters
    on a bound, comma-separated; empty when none).
    """

    n_closest: int | None = None
    name: ClassVar[str] = "kriging"
    probabilistic: ClassVar[bool] = True

    def predict(self, tasks: Tasks, progress: bool = False) -> Prediction:
        mean = np.empty(tasks.values.shape, dtype=np.float32)
        std = np.empty_like(mean)
        n, channels = tasks.values.shape[:2]
        fits = np.empty((n, channels), dtype=object)
        for i, c in tqdm(list(tasks.rasters()), desc="ordinary kriging", disable=not progress):
            mean[i, c], std[i, c], fits[i, c] = ordinary_kriging(
                tasks.values[i, c], tasks.context[i], n_closest=self.n_closest
            )
        diagnostics = {
            f"variogram_{name}": np.vectorize(lambda fit, name=name: getattr(fit, name))(fits)
            for name in ("model", "psill", "range", "nugget")
        }
        diagnostics["variogram_flags"] = np.vectorize(lambda fit: ",".join(fit.at_bounds))(fits)
        return Prediction(mean, std, diagnostics)


@dataclass(frozen=True)
class GaussianProcessOracle:
    """The exact posterior of Gaussian random fields (simple kriging with the true
    kernel, length scale and noise): the best any method can do on them.

    ``truth`` describes the data set that ``Tasks.images`` index.
    """

    truth: GaussianFieldTruth
    name: ClassVar[str] = "oracle"
    probabilistic: ClassVar[bool] = True

    def predict(self, tasks: Tasks, progress: bool = False) -> Prediction:
        mean = np.empty(tasks.values.shape, dtype=np.float32)
        std = np.empty_like(mean)
        for i, c in tqdm(list(tasks.rasters()), desc="oracle", disable=not progress):
            mean[i, c], std[i, c] = simple_kriging(
                tasks.values[i, c],
                tasks.context[i],
                self.truth.kernel,
                float(self.truth.length_scale[tasks.images[i]]),
                self.truth.noise_std,
            )
        return Prediction(mean, std)


def default_predictors(
    dataset: GridDataset,
    convcnp: ConvCNP | None = None,
    kriging: bool = False,
    kriging_neighbours: int | None = None,
) -> list[Predictor]:
    """The methods compared on ``dataset``: ConvCNP (when given), the three
    interpolations, ordinary kriging (when asked) and, when the data set's true
    law is known, the exact posterior."""
    predictors: list[Predictor] = [] if convcnp is None else [convcnp]
    if convcnp is not None:
        convcnp.check_fits(dataset)
    predictors += [Interpolation(method) for method in BASELINES]
    if kriging:
        predictors.append(OrdinaryKriging(kriging_neighbours))
    if dataset.truth is not None:
        predictors.append(GaussianProcessOracle(dataset.truth))
    return predictors
