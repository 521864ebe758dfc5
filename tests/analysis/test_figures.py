"""Figures of trained methods: traversal and reconstruction grids (geometry, content), KL bar charts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disent_core.analysis.figures import (
    LABEL_WIDTH,
    MAX_ALL_DIMS,
    PAD,
    TOP_DIMS,
    kl_per_dim_plot,
    latent_kl,
    latent_traversal,
    latent_traversal_grid,
    reconstruction_grid,
    reconstructions,
)
from disent_core.methods.base import Method, MethodConfig, MethodContext
from disent_core.methods.registry import METHODS
from disent_core.train import TrainResult, train

LATENT_DIM = 4
SIZE = 64
DATASETS = {
    "grey": ("dsprites_procedural", {"sizes": [3, 2, 4, 4, 4]}),
    "colour": ("shapes3d_procedural", {"sizes": [2, 2, 2, 2, 2, 2]}),
}
Trainer = Callable[..., TrainResult]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: intra-op threads only add contention on a busy 2-core box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained() -> Trainer:
    """``trained(method, dataset="grey", latent_dim=LATENT_DIM)``: a tiny run, cached per module."""

    @cache
    def _train(name: str, dataset: str = "grey", latent_dim: int = LATENT_DIM) -> TrainResult:
        method: dict = {"name": name}
        if name == "deft":
            method.update(stage_steps=4, group_size=2)
        if name == "cascade_vae_c":
            method.update(stage_steps=4)
        dataset_name, options = DATASETS[dataset]
        return train({
            "dataset": {"name": dataset_name, "options": options},
            "method": method,
            "model": {"latent_dim": latent_dim, "base_channels": 8},
            "train": {"steps": 10, "batch_size": 8, "seed": 1, "prefetch": 0, "report_every": 10},
        })

    return _train


def grid_size(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) of an image grid of 64x64 cells with its label strip."""
    return LABEL_WIDTH + cols * (SIZE + PAD) + PAD, rows * (SIZE + PAD) + PAD


def not_one_colour(path: Path) -> bool:
    with Image.open(path) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24)) > 1


@pytest.mark.parametrize("name", sorted(METHODS))
def test_traversal_grid_of_every_method(trained: Trainer, tmp_path: Path, name: str) -> None:
    result = trained(name)
    traversal = latent_traversal(result.method, result.dataset, n_steps=5)
    assert traversal.images.shape == (LATENT_DIM, 5, 1, SIZE, SIZE)
    assert np.array_equal(traversal.dims, np.arange(LATENT_DIM))
    assert traversal.images.min() >= 0 and traversal.images.max() <= 1
    assert traversal.kl.min() >= 0
    top = int(np.argmax(traversal.kl))
    if name != "did":  # after 10 steps DiD's encoder recovers nothing: its information bound is 0
        assert traversal.kl[top] > 0
    change = np.abs(traversal.images[top] - traversal.images[top, :1]).max(axis=(1, 2, 3))
    assert change[0] == 0 and change[1:].min() > 1e-5, change  # the decoded image moves with the code

    path = latent_traversal_grid(result.method, result.dataset, tmp_path / "sub" / "traversal.png", n_steps=5)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "L"
        assert image.size == grid_size(LATENT_DIM, 5)
    assert not_one_colour(path)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_reconstruction_grid_of_every_method(trained: Trainer, tmp_path: Path, name: str) -> None:
    result = trained(name)
    method, dataset = result.method, result.dataset
    originals, recon = reconstructions(method, dataset, n=3, seed=5)
    expected = dataset.sample_observations(3, np.random.default_rng(5))
    np.testing.assert_array_equal(originals, expected)
    x = torch.from_numpy(expected)
    with torch.no_grad():
        if name == "did":  # the round trip G(E(x)), E(x) clipped to the uniform prior's support
            reference = method.generate(method.samples_encoder(x).clamp(-1, 1))
        else:  # the method's own mean reconstruction, sigmoid(decoder(mean))
            reference = method.reconstruct(x)
    np.testing.assert_allclose(recon, reference.numpy(), atol=1e-6)

    path = reconstruction_grid(method, dataset, tmp_path / "recon.png", n=3, seed=5)
    with Image.open(path) as image:
        assert image.size == grid_size(2, 3)
        pixels = np.asarray(image)
    top_left = pixels[PAD:PAD + SIZE, LABEL_WIDTH + PAD:LABEL_WIDTH + PAD + SIZE]
    np.testing.assert_array_equal(top_left, np.rint(expected[0, 0] * 255).astype(np.uint8))


@pytest.mark.parametrize("name", ["beta_vae", "devae", "deft", "did"])
def test_colour_grids(trained: Trainer, tmp_path: Path, name: str) -> None:
    result = trained(name, "colour")
    traversal = latent_traversal_grid(result.method, result.dataset, tmp_path / "t.png", n_steps=3)
    recon = reconstruction_grid(result.method, result.dataset, tmp_path / "r.png", n=4)
    with Image.open(traversal) as t, Image.open(recon) as r:
        assert t.mode == r.mode == "RGB"
        assert t.size == grid_size(LATENT_DIM, 3)
        assert r.size == grid_size(2, 4)


def test_large_latent_shows_the_dims_of_largest_kl(trained: Trainer, tmp_path: Path) -> None:
    result = trained("beta_vae", latent_dim=1024)
    kl = latent_kl(result.method, result.dataset, seed=3)
    traversal = latent_traversal(result.method, result.dataset, n_steps=3, seed=3)
    assert 1024 > MAX_ALL_DIMS and len(traversal.dims) == TOP_DIMS
    np.testing.assert_array_equal(traversal.dims, np.argsort(-kl, kind="stable")[:TOP_DIMS])
    np.testing.assert_allclose(traversal.kl, kl[traversal.dims])
    assert np.all(np.diff(traversal.kl) <= 0)
    path = latent_traversal_grid(result.method, result.dataset, tmp_path / "t.png", n_steps=3, seed=3)
    with Image.open(path) as image:
        assert image.size == grid_size(TOP_DIMS, 3)
    chosen = latent_traversal(result.method, result.dataset, n_steps=2, dims=[7, 1000])
    assert chosen.images.shape[:2] == (2, 2) and list(chosen.dims) == [7, 1000]


def test_sweep_values_and_determinism(trained: Trainer) -> None:
    vae, gan = trained("beta_vae").method, trained("did").method
    dataset = trained("beta_vae").dataset
    a = latent_traversal(vae, dataset, n_steps=5, limit=2.0, seed=4)
    b = latent_traversal(vae, dataset, n_steps=5, limit=2.0, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_allclose(a.values, np.linspace(-2, 2, 5))
    assert a.kl_name == "KL"
    did = latent_traversal(gan, dataset, n_steps=3, limit=2.0)  # uniform prior: the sweep stays in [-1, 1]
    np.testing.assert_allclose(did.values, [-1, 0, 1])
    assert did.kl_name == "info"


def test_mode_and_batch_norm_statistics_are_left_alone(trained: Trainer, tmp_path: Path) -> None:
    result = trained("did")
    method = result.method
    stats = {k: v.clone() for k, v in method.generator.state_dict().items()}
    method.train()
    try:
        latent_traversal_grid(method, result.dataset, tmp_path / "t.png", n_steps=3)
        reconstruction_grid(method, result.dataset, tmp_path / "r.png", n=2)
        assert method.training
        for key, value in method.generator.state_dict().items():
            assert torch.equal(value, stats[key]), key  # eval mode: running stats untouched
    finally:
        method.eval()
    latent_traversal(method, result.dataset, n_steps=2)
    assert not method.training


def test_invalid_arguments(trained: Trainer, tmp_path: Path) -> None:
    result = trained("beta_vae")
    with pytest.raises(ValueError, match="dims"):
        latent_traversal(result.method, result.dataset, dims=[LATENT_DIM])
    with pytest.raises(ValueError, match="dims"):
        latent_traversal(result.method, result.dataset, dims=[])
    with pytest.raises(ValueError, match="n_steps"):
        latent_traversal(result.method, result.dataset, n_steps=0)
    with pytest.raises(ValueError, match="n >= 1"):
        reconstructions(result.method, result.dataset, n=0)
    with pytest.raises(ValueError, match="non-empty"):
        kl_per_dim_plot([], tmp_path / "kl.png")


class _NoDecoder(Method):
    """A method whose latent structure the figures cannot read (no encoder/decoder pair, not DiD)."""

    name = "no_decoder"
    config_class = MethodConfig

    def __init__(self) -> None:
        context = MethodContext((1, SIZE, SIZE), LATENT_DIM, "bernoulli", 1, torch.Generator())
        super().__init__(MethodConfig(), context)
        self.net = torch.nn.Linear(1, 1)

    def loss(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def optimizers(self, optim: object) -> list:
        raise NotImplementedError

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def test_unreadable_method_is_a_clear_error(trained: Trainer, tmp_path: Path) -> None:
    dataset = trained("beta_vae").dataset
    with pytest.raises(TypeError, match="no Gaussian encoder/decoder pair"):
        latent_traversal_grid(_NoDecoder(), dataset, tmp_path / "t.png")
    with pytest.raises(TypeError, match="no Gaussian encoder/decoder pair"):
        reconstruction_grid(_NoDecoder(), dataset, tmp_path / "r.png")
    assert not (tmp_path / "t.png").exists()


@pytest.mark.parametrize("latent_dim", [6, 1024])
def test_kl_per_dim_plot(tmp_path: Path, latent_dim: int) -> None:
    rng = np.random.default_rng(0)
    kl = np.concatenate([rng.uniform(0.5, 5, 3), rng.uniform(0, 0.005, latent_dim - 3)])
    path = kl_per_dim_plot(list(kl), tmp_path / "plots" / "kl.png", title="tiny")
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width >= 400 and height >= 300
    assert not_one_colour(path)
    everything_active = kl_per_dim_plot(np.ones(latent_dim), tmp_path / "ones.png", threshold=0.0)
    assert not_one_colour(everything_active)
