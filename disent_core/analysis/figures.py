"""Figures of a trained method: latent traversals, reconstructions and the KL of each latent dimension.

Every function writes one PNG and returns its path; the arrays behind the two image grids come from
``latent_traversal`` and ``reconstructions``, so they can be checked without reading pixels.

- ``latent_traversal_grid``: one seeded random observation x is encoded to its code (the posterior
  mean for the VAEs); row r shows the decoded images of that code with dimension dims[r] set to each
  of linspace(-limit, limit, n_steps), every other dimension held. Rows show every dimension up to
  ``MAX_ALL_DIMS`` latent dimensions, beyond that the ``TOP_DIMS`` dimensions with the largest mean
  KL on a seeded batch of ``KL_BATCH`` observations (highest first); ``dims`` picks rows explicitly.
  A label strip on the left names each row's dimension and its KL (nats).
- ``reconstruction_grid``: top row n seeded observations, bottom row their mean reconstructions.
- ``kl_per_dim_plot``: a bar chart of the KL of each latent dimension with the active threshold
  (dlib's 0.01 nats). Up to ``MAX_LABELLED_BARS`` dimensions the bars are in index order with a tick
  per dimension; beyond that (1024 latents) they are sorted by KL, drawn as one filled step curve
  without per-dimension ticks. The y axis is linear below the threshold and logarithmic above it.

Size: the grids draw each image at the data's resolution and store it losslessly by default;
``cell`` draws each image ``cell`` pixels square (area-averaged) and ``colors`` stores the grid with
that many grey levels (1-channel data) or palette colours (3-channel data), for the small figures
a study keeps per trial. ``kl_per_dim_plot`` takes a ``dpi``.

How each method is read: through ``disent_core.latents.LatentModel`` (``code``, ``decode``,
``latent_information``), which every registered method provides:

- every ``VAEMethod`` (beta-VAE, FactorVAE, DEFT ...) and DeVAE: ``encoder(x) -> (mean, logvar)``;
  the code is the mean, images are sigmoid(decoder(z)) (the Bernoulli mean for ``recon:
  bernoulli`` and the image the squared error compares for ``recon: l2``); KL_d =
  0.5 * mean_batch(mean_d^2 + exp(logvar_d) - logvar_d - 1). DeVAE uses its representation space 0,
  decoded with the layer-0 embedding. DEFT's dimensions of groups not yet trained have KL 0 and
  still feed the decoder, as in training.
- DiD (a GAN): the code is the samples encoder's E(x), clipped to the prior's support [-1, 1] under
  the uniform prior, images are G(code); with the uniform prior the sweep is limited to
  [-min(limit, 1), min(limit, 1)]. A "reconstruction" is the round trip G(E(x)) (E is trained on
  generated images only, so this shows how well it inverts G on real data), and the "KL" is DiD's
  per-dimension information bound on ``KL_BATCH`` codes drawn from the prior with the figure's seed
  (see ``disent_core.methods.did``), labelled "info".

A model that is not a ``LatentModel`` gets a ``TypeError``. Randomness: observations come from
``np.random.default_rng(seed)``, DiD's prior codes from a ``torch.Generator`` seeded with ``seed``;
the method's own generator is never drawn from. The method runs in eval mode under ``no_grad`` on
``device`` and is given back in its previous mode and on its previous device.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from disent_core.data.dataset import GroundTruthDataset, to_uint8
from disent_core.latents import LatentModel

MAX_ALL_DIMS = 16
"""Traversals show every dimension of codes up to this size, else the ``TOP_DIMS`` of largest KL."""
TOP_DIMS = 10
KL_BATCH = 64
"""Observations (DiD: prior codes) in the seeded batch that ranks the dimensions by KL."""
MAX_LABELLED_BARS = 32
"""``kl_per_dim_plot`` draws one labelled bar per dimension up to this many dimensions."""
PAD = 2
"""Pixels between and around the cells of an image grid."""
LABEL_WIDTH = 64
"""Width in pixels of the label strip left of an image grid."""
BACKGROUND = 255


@dataclass(frozen=True)
class Traversal:
    """What ``latent_traversal_grid`` draws: row r sweeps latent dimension ``dims[r]``."""

    images: np.ndarray
    """(rows, n_steps, C, H, W) float32 in [0, 1]."""
    dims: np.ndarray
    """(rows,) latent dimension swept in each row."""
    kl: np.ndarray
    """(rows,) mean KL (nats; DiD: information bound) of each row's dimension."""
    values: np.ndarray
    """(n_steps,) values the swept dimension takes, left to right."""
    kl_name: str
    """What ``kl`` is: "KL", or "info" for DiD."""


def _latents(method: torch.nn.Module) -> LatentModel:
    if not isinstance(method, LatentModel):
        raise TypeError(
            f"method {type(method).__name__!r} has no Gaussian encoder/decoder pair nor another way to "
            "code, decode and measure its latents (disent_core.latents.LatentModel): the figures cannot "
            "encode and decode its observations"
        )
    return method


@contextlib.contextmanager
def _inference(method: torch.nn.Module, device: str | torch.device) -> Iterator[torch.device]:
    """Eval mode, no_grad, on ``device``; restores the method's mode and device afterwards."""
    was_training = method.training
    original = next(method.parameters()).device
    target = torch.device(device)
    method.to(target)
    method.eval()
    try:
        with torch.no_grad():
            yield target
    finally:
        method.to(original)
        method.train(was_training)


def _observations(dataset: GroundTruthDataset, n: int, seed: int, device: torch.device) -> torch.Tensor:
    images = dataset.sample_observations(n, np.random.default_rng(seed))
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)


def _kl(latents: LatentModel, dataset: GroundTruthDataset, seed: int,
        device: torch.device) -> np.ndarray:
    x = _observations(dataset, KL_BATCH, seed, device)
    generator = torch.Generator().manual_seed(seed)
    return latents.latent_information(x, generator).double().cpu().numpy()


def latent_kl(
    method: torch.nn.Module, dataset: GroundTruthDataset, *, seed: int = 0, device: str | torch.device = "cpu"
) -> np.ndarray:
    """(d,) mean KL per latent dimension (DiD: information bound) on ``KL_BATCH`` seeded observations.

    Args:
        method: a ``LatentModel`` module (every registered method).
        dataset: where the observations are drawn from.
        seed: seeds the observations (and DiD's prior codes).
        device: where the method runs.

    Returns:
        (d,) float64 nats per dimension.

    Raises:
        TypeError: ``method`` is not a ``LatentModel``.
    """
    latents = _latents(method)
    with _inference(method, device) as target:
        return _kl(latents, dataset, seed, target)


def _select_dims(kl: np.ndarray, dims: Sequence[int] | None) -> np.ndarray:
    latent_dim = len(kl)
    if dims is None:
        if latent_dim <= MAX_ALL_DIMS:
            return np.arange(latent_dim)
        return np.argsort(-kl, kind="stable")[:TOP_DIMS]
    chosen = np.asarray(list(dims), dtype=np.int64)
    if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= latent_dim:
        raise ValueError(f"dims must be a non-empty list of indices in [0, {latent_dim}), got {list(dims)}")
    return chosen


def latent_traversal(
    method: torch.nn.Module,
    dataset: GroundTruthDataset,
    *,
    n_steps: int = 9,
    limit: float = 2.5,
    seed: int = 0,
    dims: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
) -> Traversal:
    """The decoded images of ``latent_traversal_grid`` (see the module docstring).

    Args:
        method: a ``LatentModel`` module (every registered method).
        dataset: where the seeded observation is drawn from.
        n_steps: values per row, >= 1.
        limit: the sweep covers [-limit, limit] (clipped to ``code_bound``), > 0.
        seed: seeds the observation and the KL batch.
        dims: the dimensions to sweep, one row each (default: all, or the ``TOP_DIMS`` of largest KL).
        device: where the method runs.

    Returns:
        A ``Traversal``: images (rows, n_steps, C, H, W) float32 in [0, 1], dims, their KL (nats),
        the swept values and the KL's name.

    Raises:
        ValueError: ``n_steps < 1``, ``limit <= 0`` or ``dims`` out of range or empty.
        TypeError: ``method`` is not a ``LatentModel``.
    """
    if n_steps < 1 or limit <= 0:
        raise ValueError(f"need n_steps >= 1 and limit > 0, got n_steps={n_steps}, limit={limit}")
    latents = _latents(method)
    with _inference(method, device) as target:
        kl = _kl(latents, dataset, seed, target)
        rows = _select_dims(kl, dims)
        reach = limit if latents.code_bound is None else min(limit, latents.code_bound)
        values = np.linspace(-reach, reach, n_steps)
        code = latents.code(_observations(dataset, 1, seed, target))
        codes = code.repeat(len(rows) * n_steps, 1)
        index = torch.arange(len(codes), device=target)
        codes[index, torch.as_tensor(rows, device=target).repeat_interleave(n_steps)] = torch.as_tensor(
            values, dtype=codes.dtype, device=target
        ).repeat(len(rows))
        images = latents.decode(codes).float().cpu().numpy()
    return Traversal(
        images=images.reshape(len(rows), n_steps, *images.shape[1:]),
        dims=rows,
        kl=kl[rows],
        values=values,
        kl_name=latents.information_name,
    )


def reconstructions(
    method: torch.nn.Module,
    dataset: GroundTruthDataset,
    *,
    n: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """(originals, reconstructions), each (n, C, H, W) float32 in [0, 1], of ``n`` seeded observations.

    Args:
        method: a ``LatentModel`` module (every registered method).
        dataset: where the observations are drawn from.
        n: how many observations, >= 1.
        seed: seeds the observations.
        device: where the method runs.

    Returns:
        (originals, decode(code(originals))), each (n, C, H, W) float32 in [0, 1].

    Raises:
        ValueError: ``n < 1``.
        TypeError: ``method`` is not a ``LatentModel``.
    """
    if n < 1:
        raise ValueError(f"need n >= 1 observations, got {n}")
    latents = _latents(method)
    with _inference(method, device) as target:
        x = _observations(dataset, n, seed, target)
        recon = latents.decode(latents.code(x))
    return x.cpu().numpy(), recon.float().cpu().numpy()


def _resize_cells(cells: np.ndarray, cell: int) -> np.ndarray:
    """(rows, cols, C, H, W) -> (rows, cols, C, cell, cell), each image area-averaged (or repeated)."""
    rows, cols, channels, h, w = cells.shape
    flat = torch.from_numpy(np.ascontiguousarray(cells, dtype=np.float32)).reshape(-1, channels, h, w)
    resized = torch.nn.functional.interpolate(flat, size=(cell, cell), mode="area")
    return resized.reshape(rows, cols, channels, cell, cell).numpy()


def _grid_image(cells: np.ndarray, labels: Sequence[str], cell: int | None = None) -> Image.Image:
    """(rows, cols, C, H, W) floats in [0, 1] -> a grid with ``PAD`` gaps and a left label strip;
    each image ``cell`` pixels square when given."""
    rows, cols, channels, h, w = cells.shape
    if channels not in (1, 3):
        raise ValueError(f"image grids need 1 (grey) or 3 (colour) channels, got {channels}")
    if cell is not None:
        if cell < 8:
            raise ValueError(f"cell must be >= 8 pixels, got {cell}")
        cells = _resize_cells(cells, cell)
        h = w = cell
    height = rows * (h + PAD) + PAD
    width = LABEL_WIDTH + cols * (w + PAD) + PAD
    canvas = np.full((height, width, channels), BACKGROUND, dtype=np.uint8)
    pixels = to_uint8(cells).transpose(0, 1, 3, 4, 2)
    for r in range(rows):
        top = PAD + r * (h + PAD)
        for c in range(cols):
            left = LABEL_WIDTH + PAD + c * (w + PAD)
            canvas[top:top + h, left:left + w] = pixels[r, c]
    image = Image.fromarray(canvas[..., 0] if channels == 1 else canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for r, label in enumerate(labels):
        draw.multiline_text((4, PAD + r * (h + PAD) + h // 4), label, fill=0, font=font)
    return image


def _reduce_colors(image: Image.Image, colors: int) -> Image.Image:
    """``colors`` evenly spaced grey levels (mode "L") or an adaptive palette of ``colors`` colours."""
    if not 2 <= colors <= 256:
        raise ValueError(f"colors must be in [2, 256], got {colors}")
    if image.mode == "L":
        step = 255 / (colors - 1)
        return image.point([round(round(v / step) * step) for v in range(256)])
    return image.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def _save_image(image: Image.Image, path: str | os.PathLike[str], colors: int | None = None) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if colors is not None:
        image = _reduce_colors(image, colors)
    image.save(out, format="PNG", optimize=True)
    return out


def latent_traversal_grid(
    method: torch.nn.Module,
    dataset: GroundTruthDataset,
    path: str | os.PathLike[str],
    *,
    n_steps: int = 9,
    limit: float = 2.5,
    seed: int = 0,
    dims: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    cell: int | None = None,
    colors: int | None = None,
) -> Path:
    """PNG of a latent traversal: one row per dimension, ``n_steps`` columns (module docstring).

    Size: (LABEL_WIDTH + n_steps * (W + PAD) + PAD) x (rows * (H + PAD) + PAD) pixels, with W = H =
    ``cell`` when given, grey (mode "L") for 1-channel data and RGB for 3-channel data (a palette
    image with ``colors``).

    Args:
        method: a ``LatentModel`` module (every registered method).
        dataset: where the seeded observation is drawn from.
        path: where the PNG goes (parents are created).
        n_steps: values per row, >= 1.
        limit: the sweep covers [-limit, limit] (clipped to ``code_bound``), > 0.
        seed: seeds the observation and the KL batch.
        dims: the dimensions to sweep (default: all, or the ``TOP_DIMS`` of largest KL).
        device: where the method runs.
        cell: draw each image this many pixels square, >= 8 (default: the data's size).
        colors: store this many grey levels or palette colours, 2-256 (default: lossless).

    Returns:
        ``path``.

    Raises:
        ValueError: as ``latent_traversal``, images with neither 1 nor 3 channels, or ``cell`` or
            ``colors`` out of range.
        TypeError: ``method`` is not a ``LatentModel``.
    """
    traversal = latent_traversal(
        method, dataset, n_steps=n_steps, limit=limit, seed=seed, dims=dims, device=device
    )
    name = traversal.kl_name
    labels = [f"dim {d}\n{name} {k:.3g}" for d, k in zip(traversal.dims, traversal.kl, strict=True)]
    return _save_image(_grid_image(traversal.images, labels, cell), path, colors)


def reconstruction_grid(
    method: torch.nn.Module,
    dataset: GroundTruthDataset,
    path: str | os.PathLike[str],
    *,
    n: int = 8,
    seed: int = 0,
    device: str | torch.device = "cpu",
    cell: int | None = None,
    colors: int | None = None,
) -> Path:
    """PNG with ``n`` seeded observations (top row) above their mean reconstructions (bottom row).

    Args:
        method: a ``LatentModel`` module (every registered method).
        dataset: where the observations are drawn from.
        path: where the PNG goes (parents are created).
        n: how many observations, >= 1.
        seed: seeds the observations.
        device: where the method runs.
        cell: draw each image this many pixels square, >= 8 (default: the data's size).
        colors: store this many grey levels or palette colours, 2-256 (default: lossless).

    Returns:
        ``path``.

    Raises:
        ValueError: ``n < 1``, images with neither 1 nor 3 channels, or ``cell`` or ``colors`` out
            of range.
        TypeError: ``method`` is not a ``LatentModel``.
    """
    originals, recon = reconstructions(method, dataset, n=n, seed=seed, device=device)
    label = _latents(method).reconstruction_name
    return _save_image(_grid_image(np.stack([originals, recon]), ["data", label], cell), path, colors)


def kl_per_dim_plot(
    kl_per_dim: Sequence[float] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    threshold: float = 0.01,
    title: str | None = None,
    name: str = "KL",
    dpi: int = 100,
) -> Path:
    """PNG bar chart of the information (nats) of each latent dimension with the active
    ``threshold`` line.

    Args:
        kl_per_dim: (d,) nats per dimension: a VAE's KL, or the measure ``name`` says.
        path: where the PNG goes (parents are created).
        threshold: nats above which a dimension counts as active.
        title: the plot's title (default: how many dimensions are active).
        name: what the values measure, for the labels (``Report.information_name``).
        dpi: pixels per inch of the PNG (the figure is 4-10 x 3.2 inches), >= 40.

    Returns:
        ``path``.

    Raises:
        ValueError: ``kl_per_dim`` is not a non-empty 1-D sequence, ``threshold < 0`` or ``dpi < 40``.
    """
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    if kl.ndim != 1 or kl.size == 0:
        raise ValueError(f"kl_per_dim must be a non-empty 1-D sequence, got shape {kl.shape}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if dpi < 40:
        raise ValueError(f"dpi must be >= 40 for readable labels, got {dpi}")
    latent_dim = kl.size
    active = int(np.sum(kl > threshold))
    figure = Figure(figsize=(min(max(4.0, 1.5 + 0.3 * latent_dim), 10.0), 3.2), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    if latent_dim <= MAX_LABELLED_BARS:
        positions = np.arange(latent_dim)
        ax.bar(positions, kl, color=np.where(kl > threshold, "C0", "C7"))
        ax.set_xticks(positions)
        ax.set_xlabel("latent dimension")
    else:
        ranked = np.sort(kl)[::-1]
        edges = np.arange(latent_dim + 1) - 0.5
        if active:
            ax.stairs(ranked[:active], edges[:active + 1], fill=True, color="C0", label="active")
        if active < latent_dim:
            ax.stairs(ranked[active:], edges[active:], fill=True, color="C7", label="inactive")
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel(f"latent dimensions sorted by {name} (of {latent_dim})")
    ax.axhline(threshold, color="C3", ls="--", lw=1.0, label=f"threshold {threshold:g} nats")
    if threshold > 0:
        ax.set_yscale("symlog", linthresh=threshold)
    ax.set_ylabel(f"{name} (nats)")
    figure.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    ax.set_title(title or f"{name} per latent dimension: {active} of {latent_dim} active")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", dpi=dpi, pil_kwargs={"optimize": True})
    return out
