"""The study's two runs, as code the notebooks call.

* :class:`TrainingRun` (``notebooks/train.ipynb``): loads a data set, trains a
  ConvCNP (resuming from the run folder's ``last.pt``), predicts a seeded subset
  of the test images with every method of :func:`~npf.predictors.default_predictors`
  and writes the run folder: checkpoints, ``history.json``, figures,
  ``metrics.json`` and ``run.json`` (parameters, machine, wall time).
* :class:`EvaluationRun` (``notebooks/evaluate.ipynb``): a trained checkpoint
  and ordinary kriging against the interpolations over a sweep of context
  fractions, written as ``summary.json``, ``summary.md``, ``scores.csv`` and figures.

Run folders are given relative to the repository root (default ``runs/...``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from npf import REPO_ROOT, metrics, provenance
from npf.data import load_splits
from npf.data.base import GridDataset, Splits
from npf.evaluation import Evaluation, evaluate
from npf.predict import predict
from npf.predictors import ConvCNP, GaussianProcessOracle, Tasks, default_predictors
from npf.scoring import Summary, score_images, summarise_scores, worst_images
from npf.study import figures, tables
from npf.study.parameters import EVALUATE_PARAMETERS, TRAIN_PARAMETERS
from npf.study.targets import target_checks, target_table
from npf.training import History, TrainConfig, Trainer, build_model, write_json_atomic

#: the notebook parameters that are fields of :class:`~npf.training.TrainConfig`
TRAIN_CONFIG_KEYS = tuple(TrainConfig.__dataclass_fields__)
DPI = 150


def run_folder(out_dir: str | None, default: str) -> Path:
    """``out_dir`` (a relative path starts at the repository root), else
    ``runs/<default>``; created if missing."""
    folder = REPO_ROOT / out_dir if out_dir else REPO_ROOT / "runs" / default
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_subset(test_size: int, n_images: int | None, seed: int) -> np.ndarray:
    """Sorted ids of a seeded subset of ``n_images`` test images (all when ``None``)."""
    n = test_size if n_images is None else min(n_images, test_size)
    return np.sort(np.random.default_rng(seed).choice(test_size, n, replace=False))


def _save(fig: Figure, path: Path) -> Figure:
    fig.savefig(path, dpi=DPI)
    return fig


@dataclass
class TrainingRun:
    """One run of the training notebook: its parameters, data, trainer and folder."""

    parameters: dict[str, Any]
    folder: Path
    splits: Splits
    trainer: Trainer
    environment: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    #: the divergence message when training stopped on a non-finite loss
    diverged: str | None = None

    @classmethod
    def start(cls, namespace: Mapping[str, Any]) -> TrainingRun:
        """Load the data and set up the trainer from the notebook's parameters
        (checked first: :func:`~npf.study.parameters.check_parameters`)."""
        p = TRAIN_PARAMETERS.values(namespace)
        started = time.perf_counter()
        folder = run_folder(p["out_dir"], p["dataset"])
        splits = load_splits(
            p["dataset"],
            p["data_dir"],
            val_fraction=p["val_fraction"],
            seed=p["seed"],
            max_train=p["max_train"],
            **p["dataset_options"],
        )
        model = build_model(
            splits.train.channels,
            p["seed"],
            hidden_channels=p["hidden_channels"],
            n_blocks=p["n_blocks"],
            kernel_size=p["kernel_size"],
            raw_context=p["raw_context"],
        )
        config = TrainConfig(**{key: p[key] for key in TRAIN_CONFIG_KEYS})
        data_settings = {key: p[key] for key in ("dataset_options", "val_fraction", "max_train")}
        trainer = Trainer(model, splits, config, folder, data_settings)
        environment = provenance.environment(trainer.device)
        return cls(p, folder, splits, trainer, environment, started)

    @property
    def test(self) -> GridDataset:
        return self.splits.test

    def describe(self) -> str:
        """The data, their split and the model's size."""
        train = self.splits.train
        return (
            f"{train.name}: rasters of shape {train.shape}, units: {train.units}\n"
            f"{self.splits.description}\n"
            f"GridConvCNP with {self.trainer.model.n_parameters():,} parameters"
        )

    def fit(self) -> History:
        """Train (resuming when asked) until the last epoch or the time limit; a run that
        diverges stops there and says so (``diverged``, also in ``run.json``)."""
        try:
            return self.trainer.fit(
                resume=self.parameters["resume"], time_limit_s=self.parameters["time_limit_s"]
            )
        except FloatingPointError as error:
            self.diverged = str(error)
            print(f"stopped: {error}")
            return self.trainer.history

    def step_log(self) -> Figure:
        """Loss and gradient norm of the logged training steps, saved as ``step_log.png``."""
        fig = figures.plot_step_log(self.trainer.history, self.trainer.n_batches)
        return _save(fig, self.folder / "step_log.png")

    def training_curves(self) -> Figure:
        """The training curves, saved as ``training_curves.png``."""
        fig = figures.plot_training_curves(
            self.trainer.history, title=f"{self.parameters['dataset']}: summed NLL per image"
        )
        return _save(fig, self.folder / "training_curves.png")

    @cached_property
    def validation_reference(self) -> dict[str, float] | None:
        """The exact posterior's scores on the validation set, with the trainer's fixed
        validation contexts and pooled over their held-out pixels as
        :meth:`~npf.training.Trainer.validate` pools ``val_heldout_nll`` and
        ``val_heldout_rmse``; ``None`` unless the data set's law is known (``gp``)."""
        val = self.splits.val
        if val.truth is None:
            return None
        values = val.values.numpy()
        valid = val.valid.numpy()[:, 0]
        context = self.trainer.val_context.cpu().numpy()[:, 0]
        tasks = Tasks(values, valid, context, np.arange(len(val)))
        oracle = GaussianProcessOracle(val.truth).predict(tasks)
        held_out = np.broadcast_to((valid & ~context)[:, None], values.shape)
        return {
            "val_heldout_nll": metrics.nll(oracle.mean, oracle.std, values, held_out),
            "val_heldout_rmse": metrics.rmse(oracle.mean, values, held_out),
        }

    def learning_curve(self) -> Figure | None:
        """On ``gp``: validation NLL gap to the exact posterior and RMSE against the
        fields seen, saved as ``learning_curve.png``; ``None`` for other data sets and
        before an epoch has finished (e.g. a run that diverged in its first)."""
        reference = self.validation_reference
        if reference is None or not self.trainer.history.epochs:
            return None
        fig = figures.plot_learning_curve(
            self.trainer.history, len(self.trainer.train_values), reference
        )
        return _save(fig, self.folder / "learning_curve.png")

    def predict_test(self, progress: bool = True) -> xr.Dataset | None:
        """Every method on the scored test images, ConvCNP from ``best.pt``; ``None``
        (saying why) when no epoch has finished (training diverged in its first, or the
        time limit came first): no model to score yet."""
        p = self.parameters
        best = self.folder / "best.pt"
        if not best.is_file():
            if self.trainer.history.epochs:
                raise FileNotFoundError(f"{best.name} is missing from the run folder")
            reason = (
                f" before training diverged ({self.diverged})"
                if self.diverged
                else " before the time limit (resume the run to go on)"
            )
            print(
                f"nothing to predict with: no epoch finished{reason}; the step log "
                "(step_log.png) shows how far it got"
            )
            return None
        convcnp = ConvCNP.load(best, device=str(self.trainer.device))
        indices = test_subset(len(self.test), p["n_test_images"], p["seed"])
        predictors = default_predictors(self.test, convcnp)
        return predict(predictors, self.test, p["eval_context"], p["seed"], indices, progress)

    def prediction_figure(self, predictions: xr.Dataset) -> Figure:
        """The seven-row figure on the first scored images, saved as ``predictions.png``."""
        images = predictions["image"].values[: self.parameters["n_figure_images"]]
        fig = figures.plot_predictions(predictions, images)
        return _save(fig, self.folder / "predictions.png")

    def score(self, predictions: xr.Dataset) -> tuple[xr.DataArray, Summary]:
        """Per-image scores and their summary over the scored images."""
        scores = score_images(predictions)
        return scores, summarise_scores(scores)

    def scores_text(self, scores: xr.DataArray, results: Summary) -> str:
        """The scores table, ConvCNP's paired differences and, where test images come
        from several scenes (DEMs), the RMSE per scene, as Markdown."""
        n, units = scores.sizes["image"], self.test.units
        text = (
            f"Scored {n} of {len(self.test)} test images, context = "
            f"{self.parameters['eval_context']:.3g} of valid pixels, units: {units}."
            f"\n\n{tables.metrics_table(results)}\n\n"
            "ConvCNP minus each other method on the same images (negative: ConvCNP better), "
            f"and the share of images where ConvCNP is better:\n\n{tables.paired_table(scores)}"
        )
        if "scene" in self.test.labels:
            scenes = self.test.labels["scene"][scores["image"].values]
            text += (
                f"\n\nMean per-image RMSE ({units}) per test scene:\n\n"
                f"{tables.group_table(scores, scenes)}"
            )
        return text

    def write_record(self, results: Summary | None) -> str:
        """``run.json`` in the run folder, and ``metrics.json`` when there are scores
        (``None``: no epoch ended, the run diverged or ran out of time in its first)."""
        history = self.trainer.history
        record = {
            "dataset": self.parameters["dataset"],
            "parameters": self.parameters,
            "splits": self.splits.sizes(),
            "environment": self.environment,
            "speed_settings": self.trainer.settings,
            "best_epoch": history.best_epoch,
            "epochs_trained": len(history.epochs),
            "median_seconds_per_epoch": tables.median_epoch_seconds(history),
            "oracle_validation": self.validation_reference,
            "diverged": self.diverged,
            "wall_time_s": time.perf_counter() - self.started,
        }
        if results is not None:
            write_json_atomic(results, self.folder / "metrics.json")
        write_json_atomic(record, self.folder / "run.json")
        return (
            f"wrote records, figures and checkpoints to {os.path.relpath(self.folder, REPO_ROOT)}"
        )


@dataclass
class EvaluationRun:
    """One run of the evaluation notebook; ``sections`` collects its Markdown tables."""

    parameters: dict[str, Any]
    folder: Path
    test: GridDataset
    indices: np.ndarray
    convcnp: ConvCNP | None
    environment: dict[str, Any]
    started: float = field(default_factory=time.perf_counter)
    sections: dict[str, str] = field(default_factory=dict)
    evaluation: Evaluation | None = None

    @classmethod
    def start(cls, namespace: Mapping[str, Any]) -> EvaluationRun:
        """Load the test set and the checkpoint named by the notebook's parameters."""
        p = EVALUATE_PARAMETERS.values(namespace)
        started = time.perf_counter()
        folder = run_folder(p["out_dir"], f"{p['dataset']}-evaluation")
        test = load_splits(p["dataset"], p["data_dir"], seed=p["seed"], **p["dataset_options"]).test
        convcnp = None
        if p["checkpoint"] is not None:
            path = REPO_ROOT / p["checkpoint"]
            if not path.is_file():
                raise FileNotFoundError(
                    f"no checkpoint at {p['checkpoint']}; train one with: papermill "
                    f"notebooks/train.ipynb runs/{p['dataset']}.ipynb -p dataset {p['dataset']}"
                )
            convcnp = ConvCNP.load(path, p["device"], p["batch_size"])
        indices = test_subset(len(test), p["n_test_images"], p["seed"])
        environment = provenance.environment(p["device"])
        return cls(p, folder, test, indices, convcnp, environment, started)

    def describe(self) -> str:
        p, test = self.parameters, self.test
        lines = [
            f"{p['dataset']}: {len(test)} test rasters of shape {test.shape}, units: {test.units}",
            f"scored: {len(self.indices)} images (seed {p['seed']}); "
            f"context fractions: {p['context_fractions']}",
        ]
        if self.convcnp is not None:
            lines.append(
                f"ConvCNP from {p['checkpoint']}: epoch {self.convcnp.checkpoint['epoch']}, "
                f"{self.convcnp.model.n_parameters():,} weights"
            )
        return "\n".join(lines)

    @property
    def focus(self) -> float:
        return self.parameters["focus_fraction"]

    def run(self, progress: bool = True) -> dict[float, Summary]:
        """The sweep; returns its summary by fraction."""
        p = self.parameters
        predictors = default_predictors(
            self.test, self.convcnp, kriging=True, kriging_neighbours=p["kriging_neighbours"]
        )
        self.evaluation = evaluate(
            predictors,
            self.test,
            p["context_fractions"],
            seed=p["seed"],
            indices=self.indices,
            focus_fraction=self.focus,
            progress=progress,
        )
        return self.evaluation.summary()

    def _section(self, key: str, title: str, body: str) -> str:
        self.sections[key] = f"{title}\n\n{body}"
        return self.sections[key]

    def score_tables(self, summary: dict[float, Summary]) -> str:
        """Scores per fraction, ConvCNP's paired differences at the focus, and coverage."""
        units, n = self.test.units, len(self.indices)
        texts = [
            self._section(
                f"scores {fraction:g}",
                f"Context {fraction:.3g} of the valid pixels ({n} images, units: {units})",
                tables.metrics_table(results),
            )
            for fraction, results in summary.items()
        ]
        if self.convcnp is not None:
            texts.append(
                self._section(
                    "paired",
                    f"ConvCNP minus each other method on the same images, context {self.focus:g}"
                    " (negative: ConvCNP better; share of images where ConvCNP is better)",
                    tables.paired_table(self.evaluation.scores.sel(fraction=self.focus)),
                )
            )
        texts.append(
            self._section(
                "coverage",
                "Coverage (%) of the central 50 / 90 / 95 % intervals, by context fraction",
                tables.coverage_table(summary),
            )
        )
        return "\n\n".join(texts)

    def sweep_figure(self, summary: dict[float, Summary]) -> Figure:
        max_context = None if self.convcnp is None else self.convcnp.max_context
        fig = figures.plot_metric_sweep(
            summary, units=self.test.units, training_max_context=max_context
        )
        return _save(fig, self.folder / "metrics_by_fraction.png")

    def calibration_figures(self) -> tuple[Figure, Figure]:
        """Reliability diagram and PIT histograms at the focus fraction."""
        title = f"{self.parameters['dataset']}, context {self.focus:g}"
        reliability = figures.plot_reliability(
            self.evaluation.reliability.sel(fraction=self.focus), title
        )
        pit = figures.plot_pit(self.evaluation.pit_density.sel(fraction=self.focus), title)
        return (
            _save(reliability, self.folder / "reliability.png"),
            _save(pit, self.folder / "pit.png"),
        )

    def variograms(self) -> tuple[str, Figure | None]:
        """The variogram fits table; on data of known law, fitted against true range and sill."""
        text = self._section(
            "variograms",
            "Variogram fits per context fraction",
            tables.variogram_table(self.evaluation.variograms),
        )
        if self.test.truth is None:
            return text, None
        truth = self.test.truth.subset(self.indices)
        fig = figures.plot_variogram_fits(self.evaluation.variograms, truth)
        return text, _save(fig, self.folder / "variograms.png")

    def worst(self) -> tuple[str, Figure]:
        """The images ConvCNP (kriging without a model) gets most wrong, beside kriging."""
        leader = "convcnp" if self.convcnp is not None else "kriging"
        scores = self.evaluation.scores.sel(fraction=self.focus)
        worst = worst_images(scores, leader, k=self.parameters["n_worst"])
        text = self._section(
            "worst",
            f"RMSE ({self.test.units}) on the {len(worst)} worst images by {leader}, "
            f"context {self.focus:g}",
            tables.image_table(scores, worst),
        )
        focus = self.evaluation.focus
        rows = figures.error_rows(focus, list(dict.fromkeys([leader, "kriging"])))
        fig = figures.plot_predictions(focus, worst, rows)
        return text, _save(fig, self.folder / "worst_images.png")

    def terrain(self) -> tuple[str, Figure | None]:
        """For elevation models: RMSE by terrain slope, and per test scene."""
        if self.evaluation.slope_rmse is None:
            return f"{self.parameters['dataset']} has no ground pixel size: no slope analysis", None
        by_slope = self.evaluation.slope_rmse.sel(fraction=self.focus)
        texts = [
            self._section(
                "slope",
                f"RMSE ({self.test.units}) by terrain slope, context {self.focus:g}",
                tables.slope_table(by_slope),
            )
        ]
        if "scene" in self.test.labels:
            texts.append(
                self._section(
                    "scenes",
                    f"Mean per-image RMSE ({self.test.units}) per test scene, "
                    f"context {self.focus:g}",
                    tables.group_table(
                        self.evaluation.scores.sel(fraction=self.focus),
                        self.test.labels["scene"][self.indices],
                    ),
                )
            )
        fig = figures.plot_error_by_slope(by_slope, self.test.units)
        return "\n\n".join(texts), _save(fig, self.folder / "error_by_slope.png")

    def targets(self, summary: dict[float, Summary]) -> str:
        checks = target_checks(summary, self.parameters["dataset"])
        if not checks:
            return "no target applies: no model, or 1/8 not among the context fractions"
        return self._section("targets", "Targets at context 1/8", target_table(checks))

    def write_outputs(self, summary: dict[float, Summary]) -> str:
        """``summary.json``, ``summary.md`` (every section) and ``scores.csv``."""
        wall_time = time.perf_counter() - self.started
        p = self.parameters
        record = {
            "dataset": p["dataset"],
            "parameters": p | {"n_test_images": len(self.indices), "test_size": len(self.test)},
            "environment": self.environment,
            "wall_time_s": wall_time,
            "summary": {str(fraction): scores for fraction, scores in summary.items()},
        }
        write_json_atomic(record, self.folder / "summary.json")
        per_image = self.evaluation.scores.to_dataframe(name="score")["score"].unstack("metric")
        per_image.to_csv(self.folder / "scores.csv", float_format="%.6g")
        origin = (
            f"Computed on {len(self.indices)} of the {len(self.test)} `{p['dataset']}` test "
            f"images (seed {p['seed']}) with {provenance.describe(self.environment)}, in "
            f"{wall_time / 60:.1f} min."
        )
        (self.folder / "summary.md").write_text(
            "\n\n".join([origin, *self.sections.values()]) + "\n"
        )
        return (
            "wrote summary.json, summary.md, scores.csv and figures to "
            f"{os.path.relpath(self.folder, REPO_ROOT)}"
        )
