"""Draw the book's conceptual (not result) figures into this folder.

Run from the repository root: ``.venv/bin/python book/figures/concepts.py``.
Every curve and image here is synthetic and seeded; nothing is trained. The
figures only illustrate ideas:

* ``kriging_1d.png``: prediction and uncertainty, by simple kriging
  (:func:`npf.kriging.simple_kriging`) of a 1-D transect;
* ``quadrants.png``: supervised learning vs meta-learning, one function vs a
  stochastic process (after the Neural Process Family's figure);
* ``convcnp_pipeline.png``: the on-the-grid ConvCNP, with the set convolution
  computed for a fixed Gaussian kernel (the model learns its own kernel);
* ``cnp_diagram.png``: the Conditional Neural Process, encoder h, aggregator a
  and decoder g (the report's figure 3, redrawn);
* ``np_family.png``: the members of the neural process family that the book
  discusses, conditional vs latent and by how they summarise the context (the
  report's figure 4, redrawn as a simpler chart).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.gridspec import SubplotSpec
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from scipy.ndimage import convolve, gaussian_filter

from npf.kernels import covariance, grid_points, rbf
from npf.kriging import simple_kriging

OUT = Path(__file__).resolve().parent
CONTEXT_COLOUR = "black"
TARGET_COLOUR = "tab:red"
MEAN_COLOUR = "tab:blue"
DPI = 150


def gp_draws(n_draws: int, n_points: int, length_scale: float, seed: int) -> np.ndarray:
    """Zero-mean unit-variance RBF Gaussian-process draws on a 1-D grid, (n_draws, n_points)."""
    points = grid_points(1, n_points)
    cov = covariance(rbf, points, points, length_scale) + 1e-8 * np.eye(n_points)
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_draws, n_points)) @ np.linalg.cholesky(cov).T


def krige_1d(
    values: np.ndarray, observed: np.ndarray, length_scale: float, noise_std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Simple-kriging mean and std along a 1-D transect (a 1 x n grid)."""
    mean, std = simple_kriging(
        values[None, :], observed[None, :], "rbf", length_scale, noise_std=noise_std
    )
    return mean[0], std[0]


def draw_kriging_1d() -> None:
    """Observations, kriging mean, and a 95 % band along a transect."""
    n_points, length_scale, noise_std = 200, 18.0, 0.05
    truth = gp_draws(1, n_points, length_scale, seed=3)[0]
    rng = np.random.default_rng(4)
    observed = np.zeros(n_points, dtype=bool)
    observed[rng.choice(np.arange(10, 120), size=7, replace=False)] = True
    observed[185] = True
    mean, std = krige_1d(truth, observed, length_scale, noise_std)
    x = np.arange(n_points)
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.fill_between(x, mean - 1.96 * std, mean + 1.96 * std, color=MEAN_COLOUR, alpha=0.2)
    ax.plot(x, truth, color="0.4", lw=1, ls="--", label="true (unknown) surface")
    ax.plot(x, mean, color=MEAN_COLOUR, lw=2, label="kriging prediction")
    ax.plot([], [], color=MEAN_COLOUR, alpha=0.3, lw=8, label="95 % interval")
    ax.plot(x[observed], truth[observed], "o", color=CONTEXT_COLOUR, label="observations")
    ax.set_xlabel("position along a transect")
    ax.set_ylabel("value")
    ax.set_title("Geostatistical interpolation: a prediction and its uncertainty")
    ax.legend(loc="upper right", fontsize=8, ncol=2, frameon=False)
    ax.set_ylim((mean - 1.96 * std).min() - 0.3, (mean + 1.96 * std).max() + 1.0)
    fig.tight_layout()
    fig.savefig(OUT / "kriging_1d.png", dpi=DPI)
    plt.close(fig)


def _task_axes(ax: Axes, title: str | None = None) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _plot_task(
    ax: Axes, truth: np.ndarray, context: np.ndarray, targets: np.ndarray, with_band: bool
) -> None:
    """One regression task: context dots, target stars, predicted curve (and band)."""
    mean, std = krige_1d(truth, context, length_scale=12.0, noise_std=0.05)
    x = np.arange(truth.size)
    if with_band:
        ax.fill_between(x, mean - 1.96 * std, mean + 1.96 * std, color=MEAN_COLOUR, alpha=0.2)
    ax.plot(x, mean, color=MEAN_COLOUR, lw=1.5)
    ax.plot(x[context], truth[context], "o", color=CONTEXT_COLOUR, ms=4)
    ax.plot(x[targets], truth[targets], "*", color=TARGET_COLOUR, ms=9)
    ax.set_ylim(-3.5, 3.5)
    _task_axes(ax)


def _panel(
    fig: plt.Figure,
    cell: SubplotSpec,
    tasks: np.ndarray,
    masks: list[tuple[np.ndarray, np.ndarray]],
    meta: bool,
    with_band: bool,
    title: str,
) -> None:
    if not meta:
        ax = fig.add_subplot(cell)
        _plot_task(ax, tasks[0], *masks[0], with_band=with_band)
        ax.set_title(title, fontsize=10)
        return
    grid = cell.subgridspec(3, 2, width_ratios=[1, 3], wspace=0.08, hspace=0.15)
    for row in range(3):
        small = fig.add_subplot(grid[row, 0])
        _plot_task(small, tasks[row + 1], *masks[row + 1], with_band=with_band)
        if row == 0:
            small.set_title("training tasks", fontsize=8)
    ax = fig.add_subplot(grid[:, 1])
    _plot_task(ax, tasks[0], *masks[0], with_band=with_band)
    ax.set_title(title, fontsize=10)


def draw_quadrants() -> None:
    """2 x 2 concept map; neural processes sit bottom right."""
    n_points = 100
    tasks = gp_draws(4, n_points, length_scale=12.0, seed=11)
    rng = np.random.default_rng(12)
    masks = []
    for _ in tasks:
        order = rng.permutation(n_points)
        context = np.zeros(n_points, dtype=bool)
        targets = np.zeros(n_points, dtype=bool)
        context[order[:7]] = True
        targets[order[7:10]] = True
        masks.append((context, targets))
    fig = plt.figure(figsize=(10, 7))
    outer = fig.add_gridspec(
        2, 2, left=0.1, right=0.98, top=0.84, bottom=0.03, wspace=0.12, hspace=0.3
    )
    titles = {
        (False, False): "fit one function to one data set\n(e.g. a neural-network regressor)",
        (False, True): "infer a distribution over functions\nfrom one data set (a GP / kriging)",
        (True, False): "learn, from many tasks, to predict\none function for a new task",
        (True, True): "learn, from many tasks, to predict\na stochastic process: neural processes",
    }
    for row, meta in enumerate((False, True)):
        for col, with_band in enumerate((False, True)):
            title = titles[(meta, with_band)]
            _panel(fig, outer[row, col], tasks, masks, meta, with_band, title)
    label = {"ha": "center", "va": "center", "fontsize": 12, "weight": "bold"}
    for col, text in enumerate(("models a single function", "models a stochastic process")):
        box = outer[0, col].get_position(fig)
        fig.text((box.x0 + box.x1) / 2, 0.935, text, **label)
    for row, text in enumerate(("supervised\nlearning", "meta-\nlearning")):
        box = outer[row, 0].get_position(fig)
        fig.text(0.035, (box.y0 + box.y1) / 2, text, rotation=90, **label)
    box = outer[1, 1].get_position(fig)
    frame = FancyBboxPatch(
        (box.x0 - 0.01, box.y0 - 0.01),
        box.width + 0.015,
        box.height + 0.075,
        boxstyle="round,pad=0.005",
        transform=fig.transFigure,
        fill=False,
        edgecolor="tab:green",
        lw=2,
    )
    fig.patches.append(frame)
    fig.legend(
        handles=[
            plt.Line2D([], [], marker="o", ls="", color=CONTEXT_COLOUR, label="observed (context)"),
            plt.Line2D([], [], marker="*", ls="", ms=9, color=TARGET_COLOUR, label="to predict"),
            plt.Line2D([], [], color=MEAN_COLOUR, label="prediction"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.54, 1.0),
        ncol=3,
        frameon=False,
        fontsize=9,
    )
    fig.savefig(OUT / "quadrants.png", dpi=DPI)
    plt.close(fig)


def set_convolution(
    values: np.ndarray, mask: np.ndarray, kernel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``density = conv(mask)``, ``signal = conv(mask * values) / density`` (zero padding)."""
    density = convolve(mask.astype(float), kernel, mode="constant")
    signal = convolve(mask * values, kernel, mode="constant") / np.maximum(density, 1e-5)
    return signal, density


def _box(ax: Axes, xy: tuple[float, float], text: str, colour: str) -> None:
    ax.add_patch(
        FancyBboxPatch(
            (xy[0] - 0.08, xy[1] - 0.24),
            0.16,
            0.48,
            boxstyle="round,pad=0.01",
            facecolor=colour,
            edgecolor="0.3",
        )
    )
    ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=11.1)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="0.3"))


def draw_convcnp_pipeline() -> None:
    """Top: what the set convolution computes; bottom: the network that follows."""
    size = 64
    rng = np.random.default_rng(5)
    field = gaussian_filter(rng.standard_normal((size, size)), sigma=5, mode="wrap")
    field /= field.std()
    mask = rng.random((size, size)) < 1 / 8
    offsets = np.arange(11) - 5
    kernel = np.exp(-0.5 * (offsets[:, None] ** 2 + offsets[None, :] ** 2) / 2.0**2)
    signal, density = set_convolution(field, mask, kernel)
    context = np.where(mask, field, np.nan)

    fig = plt.figure(figsize=(11, 5.6))
    grid = fig.add_gridspec(
        2,
        4,
        height_ratios=[1.3, 0.95],
        left=0.03,
        right=0.97,
        top=0.84,
        bottom=0.0,
        wspace=0.35,
        hspace=0.12,
    )
    panels = [
        (field, "raster (truth, unseen)", "viridis"),
        (context, "context y at mask m (1/8 of pixels)", "viridis"),
        (density, "density = conv(m)", "magma"),
        (signal, "signal = conv(m·y) / conv(m)", "viridis"),
    ]
    limits = (field.min(), field.max())
    for col, (image, title, cmap) in enumerate(panels):
        ax = fig.add_subplot(grid[0, col])
        vmin, vmax = (None, None) if cmap == "magma" else limits
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_facecolor("0.85")
        ax.set_title(title, fontsize=11.7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.text(
        0.5,
        0.93,
        "Set convolution, illustrated with a fixed Gaussian 11×11 kernel\n"
        "(the model learns a positive 11×11 kernel per channel)",
        ha="center",
        fontsize=13,
    )

    ax = fig.add_subplot(grid[1, :])
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.62, 0.3)
    ax.axis("off")
    steps = [
        ("[signal, density]\n2C channels", "0.92"),
        ("1×1 linear map\nto 128 channels", "#cfe2f3"),
        ("5 residual blocks\n2 × (BN, ReLU,\ndepthwise 9×9,\npointwise 1×1)", "#cfe2f3"),
        ("per-pixel MLP\n4 hidden layers\nof 128, ReLU", "#d9ead3"),
        ("mean\nstd = 0.01 +\n0.99·softplus(raw)", "#fce5cd"),
    ]
    centres = np.linspace(0.09, 0.91, len(steps))
    for centre, (text, colour) in zip(centres, steps, strict=True):
        _box(ax, (centre, 0.0), text, colour)
    for left, right in zip(centres[:-1], centres[1:], strict=True):
        _arrow(ax, (left + 0.085, 0.0), (right - 0.085, 0.0))
    ax.text(
        0.5,
        -0.52,
        "encoder: set convolution + CNN (translation equivariant)  →  "
        "decoder: the same MLP at every pixel",
        ha="center",
        fontsize=11.7,
        style="italic",
    )
    fig.savefig(OUT / "convcnp_pipeline.png", dpi=DPI)
    plt.close(fig)


def _node(
    ax: Axes,
    xy: tuple[float, float],
    text: str,
    colour: str,
    size: tuple[float, float] = (0.11, 0.12),
    bold: bool = False,
    fontsize: float = 9,
) -> None:
    """A rounded box of ``size`` (width, height) centred on ``xy``, with ``text``."""
    width, height = size
    ax.add_patch(
        FancyBboxPatch(
            (xy[0] - width / 2, xy[1] - height / 2),
            width,
            height,
            boxstyle="round,pad=0.008",
            facecolor=colour,
            edgecolor="0.15" if bold else "0.45",
            linewidth=2.0 if bold else 1.0,
        )
    )
    ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=fontsize)


def _link(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A thin arrow from ``start`` to ``end``."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, color="0.3"))


def draw_cnp_diagram() -> None:
    """The CNP: h embeds each context pair, a pools them into r, g decodes (r, x) at a target."""
    fig, ax = plt.subplots(figsize=(10, 3.9))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    encoder, aggregate, decoder = "#cfe2f3", "#fff2cc", "#d9ead3"
    rows = [0.8, 0.55, 0.3]
    labels = ["$(x_1, y_1)$", "$(x_2, y_2)$", "$(x_C, y_C)$"]
    for y, label in zip(rows, labels, strict=True):
        _node(ax, (0.07, y), label, "white", size=(0.1, 0.11))
        _node(ax, (0.24, y), "$h$\nMLP", encoder, size=(0.08, 0.13))
        _node(ax, (0.38, y), f"$r_{{{label[4]}}}$", "0.95", size=(0.05, 0.1))
        _link(ax, (0.125, y), (0.195, y))
        _link(ax, (0.285, y), (0.35, y))
        _link(ax, (0.41, y), (0.5, 0.55))
    ax.text(0.07, 0.43, "⋮", ha="center", va="center", fontsize=18.2)
    ax.text(0.38, 0.43, "⋮", ha="center", va="center", fontsize=18.2)
    _node(ax, (0.55, 0.55), "$a$\nmean", aggregate, size=(0.09, 0.16))
    _node(ax, (0.69, 0.55), "$r$", "0.95", size=(0.05, 0.1))
    _link(ax, (0.6, 0.55), (0.665, 0.55))
    _node(ax, (0.69, 0.2), "target $x$", "white", size=(0.1, 0.1))
    _node(ax, (0.82, 0.55), "$g$\nMLP", decoder, size=(0.08, 0.16))
    _link(ax, (0.715, 0.55), (0.78, 0.55))
    _link(ax, (0.74, 0.2), (0.8, 0.47))
    _node(ax, (0.94, 0.55), "$\\mu(x)$\n$\\sigma(x)$", "#fce5cd", size=(0.09, 0.16))
    _link(ax, (0.86, 0.55), (0.895, 0.55))
    ax.text(0.07, 0.96, "context set $\\mathcal{C}$", ha="center", fontsize=11.7)
    ax.text(0.24, 0.96, "encoder (shared)", ha="center", fontsize=11.7)
    ax.text(0.55, 0.96, "aggregator (symmetric)", ha="center", fontsize=11.7)
    ax.text(0.87, 0.96, "decoder, at every target", ha="center", fontsize=11.7)
    ax.text(
        0.5,
        0.03,
        "$r = a(\\{h(x_c, y_c)\\}_{c \\in \\mathcal{C}})$: one summary of the whole context;  "
        "$p(y \\mid x, \\mathcal{C}) = \\mathcal{N}(\\mu(x), \\sigma^2(x))$, "
        "independently at each target",
        ha="center",
        fontsize=11.7,
    )
    fig.tight_layout()
    fig.savefig(OUT / "cnp_diagram.png", dpi=DPI)
    plt.close(fig)


def draw_np_family() -> None:
    """Conditional and latent NPs, by how the context is summarised; ConvCNP marked."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    columns = [0.3, 0.58, 0.86]
    rows = {"conditional": 0.62, "latent": 0.2}
    headers = [
        "mean pooling\n(one summary for all targets)",
        "attention\n(a summary per target)",
        "set convolution + CNN\n(translation equivariant)",
    ]
    for x, header in zip(columns, headers, strict=True):
        ax.text(x, 0.93, header, ha="center", va="center", fontsize=11.7)
    ax.text(
        0.06,
        rows["conditional"],
        "conditional\n(factorised\nGaussian)",
        ha="center",
        va="center",
        fontsize=11.7,
    )
    ax.text(
        0.06,
        rows["latent"],
        "latent\n(global $z$:\ncoherent\nsamples)",
        ha="center",
        va="center",
        fontsize=11.7,
    )
    conditional, latent, chosen = "#cfe2f3", "#ead1dc", "#f9cb9c"
    boxes = {
        ("CNP", "conditional"): (columns[0], "CNP\nGarnelo et al. 2018a", conditional, True),
        ("AttnCNP", "conditional"): (columns[1], "AttnCNP\nKim et al. 2019", conditional, False),
        ("ConvCNP", "conditional"): (
            columns[2],
            "ConvCNP\nGordon et al. 2020\n(this study)",
            chosen,
            True,
        ),
        ("LNP", "latent"): (columns[0], "LNP (NP)\nGarnelo et al. 2018b", latent, True),
        ("AttnLNP", "latent"): (columns[1], "AttnLNP\nKim et al. 2019", latent, False),
        ("ConvLNP", "latent"): (columns[2], "ConvLNP", latent, False),
    }
    for (_, row), (x, text, colour, bold) in boxes.items():
        _node(ax, (x, rows[row]), text, colour, size=(0.19, 0.2), bold=bold)
    for row in rows.values():
        _link(ax, (columns[0] + 0.1, row), (columns[1] - 0.1, row))
        _link(ax, (columns[1] + 0.1, row), (columns[2] - 0.1, row))
    for x in columns:
        _link(ax, (x, rows["conditional"] - 0.105), (x, rows["latent"] + 0.105))
    ax.text(
        columns[0] + 0.012, 0.41, "add a latent $z$", fontsize=10.4, style="italic", color="0.25"
    )
    ax.text(
        0.58,
        0.02,
        "Bold: the two base classes (CNP, LNP) and the model of this study. "
        "After the Neural Process Family (Dubois et al. 2020).",
        ha="center",
        fontsize=11.1,
    )
    fig.tight_layout()
    fig.savefig(OUT / "np_family.png", dpi=DPI)
    plt.close(fig)


def main() -> None:
    draw_kriging_1d()
    draw_quadrants()
    draw_convcnp_pipeline()
    draw_cnp_diagram()
    draw_np_family()


if __name__ == "__main__":
    main()
