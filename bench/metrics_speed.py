"""Speed of the metric engine against disent 0.8.0 and disentanglement_lib's plain loops.

    python bench/metrics_speed.py [--quick] [--checkpoint DIR] [--rounds N] [--disent-path DIR]

What is scored
--------------
Two 10-dim representations of dSprites (the procedural renderer's full 737,280-point grid):

- ``trained``: the mean codes of a beta-VAE (beta 4, 10 latents, ``base_channels`` 16) trained here
  for 1000 steps of batch 64 (or the model of ``--checkpoint``, a directory written by ``train``);
- ``synthetic``: codes computed from the ground-truth factors (each scaled to [0, 1]): dims 0-4
  track shape, scale, orientation, posX and posY plus Gaussian noise (sd 0.05), dim 5 mixes posX
  and posY, dim 6 mixes shape and scale, dims 7-9 are pure noise (sd 1).

The codes of every grid point are computed once, before anything is timed (two to three minutes
on two idle cores, training included). Both libraries then sample from one dataset whose observation of
a grid point is a tiny 1x1x3 image carrying the point's index, and the representation looks the
codes up. So the timings measure the metric machinery (sampling, batching, the estimators), not
rendering or the CNN: those scale with the number of observations a metric encodes, which is the
same on both sides (disent encodes batches of 16 or 64, the engine chunks of 1024).

What is compared, on each representation
----------------------------------------
1. The engine: ``evaluate(representation, dataset, "dlib2019", seed=0)``, the full suite, with the
   wall time of each metric and of the shared point sets (``points``).
2. disent 0.8.0 (``speedup_vs_disent[<metric>]``, disent's time / the engine's), on the same dataset
   (wrapped in disent's ``DisentDataset`` through a ``GroundTruthData`` view that reads the same
   observation store) and the same representation, with dlib2019's sizes:

   - MIG, DCI and SAP: disent's own sampling (``generate_batch_factor_code``, batches of 16) is
     timed, then its scoring function (``_compute_mig``, ``_compute_dci``, ``_compute_sap``) runs on
     *the engine's* points. Together that is exactly the body of ``metric_mig`` and the others,
     and both sides score the same points, so the values are directly comparable.
   - FactorVAE score: ``metric_factor_vae`` end to end (batch 64, 10000 / 5000 votes, 10000
     points for the variances). disent hard-codes the pruning threshold 0.0; it is set to dlib's
     0.05 here (the default argument of its ``_prune_dims``). Its votes come from its own draws.

   The engine's time for a metric that reads the shared point sets is its own time plus the
   whole ``points`` time (all metrics' points, not just its own).
3. BetaVAE score (``speedup_vs_dlib_loop[beta_vae]``): disent 0.8.0 has none, so dlib's
   ``beta_vae_sklearn`` is re-implemented as its plain loop: per point, draw a factor, two batches
   of 64 factor vectors sharing it, observe and encode each batch, average |z1 - z2|; then a
   liblinear one-vs-rest ``LogisticRegression`` (the scikit-learn default of dlib's runs). The
   engine's side is ``evaluate(..., metrics=["beta_vae"])``. Both sides run ``BETA_VAE_PAIRS`` (5)
   times per round, alternating which goes first, and the ratio is of the medians: the engine's
   run takes under half a second, where one stall of the machine would decide a single pair.
4. DCI against the plain loop (``dci_vs_sklearn_loop``, loop time / the engine's DCI time): the
   plain per-factor ``GradientBoostingClassifier()`` loop is disent's ``_compute_dci`` above (dlib's
   code), on the same points, compared with the DCI fits of the suite.
5. The fast DCI variant (``fast_dci_speedup``, the compatible DCI's time / the variant's, and
   ``fast_dci_disentanglement_gap``, the variant's disentanglement minus the compatible one's): the
   engine's DCI with the ``fast`` protocol's estimator (``hist_gbt``, see
   ``disent_core.metrics.dci``) on the same points as the compatible (``gbt``) one in the suite.

6. The BetaVAE score with the CNN (``speedup_vs_dlib_loop[beta_vae_cnn]``, trained model only,
   one round whatever ``--rounds``): the engine and the loop of item 3 on the procedural renderer's
   64x64 images, both encoding them with the trained model: the engine is given the model (which
   it runs in batches of ``CPU_BATCH_SIZE``, 64, on the CPU), the loop calls it on its numpy
   batches of 64; a forward hook counts the images each side encodes. Rendering and the CNN
   dominate here; the engine encodes each grid point once (``EvalContext.codes_of_grid_points``),
   the loop every one of the 1.92 million observations. It is printed, without a target.

Output: the suite's per-metric wall times and values, then per representation every comparison
with both sides' wall times and values (``speedup_vs_disent[mig] (trained) = R``), the CNN
comparison, then one line per ratio, ``speedup_vs_disent[mig]: R``, ``speedup_vs_disent[dci]``,
``[factor_vae]``, ``[sap]``, ``speedup_vs_dlib_loop[beta_vae]``, ``dci_vs_sklearn_loop``,
``fast_dci_speedup``, ``fast_dci_disentanglement_gap`` (each the worse of the two representations:
the smaller ratio, the larger absolute gap) and ``speedup_vs_dlib_loop[beta_vae_cnn]``, then the
targets: MIG, FactorVAE, BetaVAE and SAP at least 5 times faster than disent's or dlib's loop, DCI
no slower than the plain loop, the fast DCI at least 10 times faster than the compatible one with
its disentanglement within 0.05. The full run takes about 30 minutes on two idle cores, most of it
in gradient boosting (the engine's DCI and the plain loop, about 3 and 4 minutes per
representation), in the CNN comparison (about 4 minutes) and in encoding the grid with the trained
model. The ratios are of wall times: on a loaded machine the engine loses its parallel fits first.

Where the BetaVAE score's time goes on looked-up codes: of the engine's 0.35 to 0.45 s, about 0.3 s
go to what both sides do for each of its 1.92 million observations (drawing 3.84 million factor
vectors, computing their grid indices and looking their codes up; a lookup is as cheap as the
gather from a table of distinct points, so the engine does not deduplicate there). The loop adds
about 2 s of per-point Python to the same work (its ten small ``integers`` calls per point among
it: factors are drawn one column at a time, as dlib's ``SplitDiscreteStateSpace`` draws them).
Measured on two cores: engine 0.39 s, loop 2.48 s, 6.3 times (medians of 9 pairs).

With a CNN (item 6) every observation costs far more than that per-point Python, and what decides
is how many images each side renders and encodes: the engine encodes about 685,000 (dSprites'
distinct grid points among the draws), the loop 1.92 million; measured 49.5 s against 162 s, 3.3
times: the 2.8 times fewer images, rendered and encoded at about 14,000 images/s against the
loop's 12,000. The CNN comparison has no target; no sampling machinery can beat that image count.

``--quick`` is a smoke run of a minute or two: a reduced grid (3, 6, 10, 8, 8), 30 training steps
and samples of 1000 / 500; its numbers mean nothing. ``--rounds N`` repeats every measurement,
alternating which side runs first, and reports medians (values, and disent's split between
sampling and scoring, come from the first round).

Installing disent 0.8.0
-----------------------
disent is a benchmark-only dependency and not a project extra: ``pip install disent==0.8.0``
would replace torch 2.13.0+cpu (its torchvision requirement resolves to 0.29.1, which pins torch
2.14.1), and PyPI's torchvision builds cannot be imported beside torch 2.13.0+cpu. Its metric
modules need only numpy, scipy, scikit-learn, torch and tqdm (all in the project's venv), so it
is installed on its own, without dependencies, outside the venv:

    pip install --no-deps --target /tmp/disent-0.8.0 disent==0.8.0

and found there through ``--disent-path`` (default ``/tmp/disent-0.8.0``; a disent importable from
the venv is used first). Importing disent's metric modules pulls in ``disent.dataset``, whose image
datasets import torchvision at module level; when torchvision is not installed, empty
``torchvision`` modules are registered first (nothing the metrics run uses them). disent's
``disent.metrics/__init__`` also imports its lightning frameworks, so the package is registered
as a plain namespace and the four metric modules are imported directly.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import statistics
import sys
import time
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier

from disent_core.data.dataset import GroundTruthDataset, to_float
from disent_core.data.factor_space import FactorSpace
from disent_core.data.registry import get_dataset
from disent_core.data.stores import ObservationStore
from disent_core.methods.base import Method
from disent_core.metrics import EvaluationResult, Protocol, evaluate, get_protocol
from disent_core.metrics import dci as engine_dci
from disent_core.metrics.base import EvalContext
from disent_core.metrics.protocol import BetaVAESettings
from disent_core.train import load_trained, train

SEED = 0
LATENTS = 10
TRAIN_STEPS, QUICK_TRAIN_STEPS = 1000, 30
QUICK_GRID = (3, 6, 10, 8, 8)
QUICK_SIZES = {"num_train": 1000, "num_test": 500, "num_eval": 500, "num_variance_estimate": 1000}
DEFAULT_DISENT_PATH = Path("/tmp/disent-0.8.0")
FAST_DCI_ESTIMATOR = get_protocol("fast").dci.estimator
ENCODE_CHUNK = 64
BETA_VAE_PAIRS = 5
"""Runs of each side of the BetaVAE comparison per round (``compare_beta_vae``)."""
POINT_METRICS = ("mig", "dci", "sap", "factor_vae")
"""Engine metrics that read the shared point sets: their time includes the ``points`` time."""


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of ``function()`` and its result."""
    start = time.perf_counter()
    out = function()
    return time.perf_counter() - start, out


# --- the dataset and the representations ------------------------------------------------------


class IndexStore(ObservationStore):
    """Grid point ``i`` as a (1, 1, 3) uint8 image holding ``i`` in base 256."""

    def __init__(self, size: int) -> None:
        if size > 2**24:
            raise ValueError(f"at most 2**24 grid points fit in three bytes, got {size}")
        self._size = size
        self.shape = (1, 1, 3)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, indices: np.ndarray) -> np.ndarray:
        index = np.asarray(indices, dtype=np.int64)
        digits = (index[:, None] >> np.array([16, 8, 0])) & 255
        return digits.astype(np.uint8)[:, None, None, :]


class CodeTable:
    """The representation of an ``IndexStore`` observation: the codes of the point it carries."""

    DIGITS = np.array([255.0 * 65536, 255.0 * 256, 255.0])
    """Observation channel values (byte / 255) -> the point's index."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes

    def __call__(self, observations: np.ndarray | torch.Tensor) -> np.ndarray:
        index = np.rint(np.asarray(observations).reshape(-1, 3) @ self.DIGITS).astype(np.intp)
        return np.take(self.codes, index, axis=0)


def index_dataset(images: GroundTruthDataset) -> GroundTruthDataset:
    """The latent factor grid of ``images`` with index-carrying observations (no nuisance factors)."""
    space = FactorSpace(tuple(images.factor_names), tuple(images.factors_num_values))
    return GroundTruthDataset(f"{images.name}_index", space, IndexStore(space.size))


def train_config(quick: bool) -> dict[str, Any]:
    """The benchmark's beta-VAE: small (``base_channels`` 16) so that encoding the grid is quick."""
    options = {"sizes": list(QUICK_GRID)} if quick else {}
    return {
        "dataset": {"name": "dsprites_procedural", "options": options},
        "method": {"name": "beta_vae", "beta": 4},
        "model": {"latent_dim": LATENTS, "base_channels": 16},
        "train": {"steps": QUICK_TRAIN_STEPS if quick else TRAIN_STEPS, "batch_size": 64, "seed": SEED},
    }


def trained_codes(
    images: GroundTruthDataset, checkpoint: Path | None, quick: bool
) -> tuple[Method, np.ndarray, str]:
    """The trained model, the mean codes of every latent grid point of ``images`` (C order), and a
    description."""
    if checkpoint is not None:
        method, config = load_trained(checkpoint, device="cpu")
        what = f"{config.method.name} loaded from {checkpoint}"
    else:
        seconds, result = timed(lambda: train(train_config(quick)))
        method, config = result.method, result.config
        what = (f"{config.method.name} (beta 4, base_channels 16), {config.train.steps} steps of batch 64 "
                f"trained in {seconds:.1f} s")
    method.eval()
    sizes = images.factors_num_values
    total = int(np.prod(sizes))
    codes = np.empty((total, config.model.latent_dim))
    rng = np.random.default_rng(SEED)
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, total, ENCODE_CHUNK):
            index = np.arange(first, min(first + ENCODE_CHUNK, total))
            factors = np.stack(np.unravel_index(index, sizes), axis=1)
            x = torch.from_numpy(images.sample_observations_from_factors(factors, rng))
            codes[index] = method.representation(x).double().numpy()
    encode_s = time.perf_counter() - start
    return method, codes, f"{what}; {total} grid codes in {encode_s:.1f} s"


def synthetic_codes(dataset: GroundTruthDataset) -> np.ndarray:
    """The synthetic representation of every grid point (see the module docstring)."""
    sizes = np.asarray(dataset.factors_num_values)
    factors = dataset.factor_space.index_to_factors(np.arange(len(dataset)))
    scaled = factors / np.maximum(sizes - 1, 1)
    noise = np.random.default_rng(SEED).normal(size=(len(factors), LATENTS))
    codes = np.empty((len(factors), LATENTS))
    codes[:, :5] = scaled + 0.05 * noise[:, :5]
    codes[:, 5] = 0.7 * scaled[:, 3] + 0.3 * scaled[:, 4] + 0.05 * noise[:, 5]
    codes[:, 6] = 0.5 * scaled[:, 0] + 0.5 * scaled[:, 1] + 0.05 * noise[:, 6]
    codes[:, 7:] = noise[:, 7:]
    return codes


class ImageCounter:
    """Counts the images a trained model's encoder sees (a forward pre-hook)."""

    def __init__(self, method: Method) -> None:
        self.images = 0
        method.encoder.register_forward_pre_hook(self._count)

    def _count(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        self.images += len(inputs[0])


def numpy_encoder(method: Method) -> Callable[[np.ndarray], np.ndarray]:
    """The trained model's representation as dlib's loop calls it: numpy in, codes out."""
    def encode(observations: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return method.representation(torch.from_numpy(observations)).double().numpy()

    return encode


# --- disent 0.8.0 ------------------------------------------------------------------------------

INSTALL_HINT = (
    "disent 0.8.0 not found: install it outside the venv with\n"
    "    pip install --no-deps --target /tmp/disent-0.8.0 disent==0.8.0\n"
    "(see this script's docstring for why) or pass --disent-path DIR"
)


def import_disent(path: Path) -> types.SimpleNamespace:
    """disent 0.8.0's MIG, DCI, SAP and FactorVAE modules and its dataset classes."""
    if importlib.util.find_spec("disent") is None:
        sys.path.append(str(path))
        if importlib.util.find_spec("disent") is None:
            raise SystemExit(INSTALL_HINT)
    if version("disent") != "0.8.0":
        raise SystemExit(f"disent {version('disent')} found; the benchmark compares 0.8.0\n{INSTALL_HINT}")
    if importlib.util.find_spec("torchvision") is None:
        for name in ("torchvision", "torchvision.datasets", "torchvision.transforms",
                     "torchvision.transforms.functional"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["torchvision.datasets"].ImageFolder = object
    import disent

    namespace = types.ModuleType("disent.metrics")
    namespace.__path__ = [str(Path(disent.__file__).parent / "metrics")]
    sys.modules.setdefault("disent.metrics", namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # disent warns that numba is missing for its datasets
        modules = {
            name: importlib.import_module(f"disent.metrics.{name}")
            for name in ("utils", "_mig", "_dci", "_sap", "_factor_vae")
        }
        dataset = importlib.import_module("disent.dataset")
        data = importlib.import_module("disent.dataset.data")
    return types.SimpleNamespace(
        DisentDataset=dataset.DisentDataset, GroundTruthData=data.GroundTruthData, **modules
    )


def disent_dataset(disent: types.SimpleNamespace, dataset: GroundTruthDataset) -> Any:
    """``dataset`` as a ``DisentDataset``: disent's C-order grid indices read our observation store."""
    if dataset.factor_space.nuisance_indices:
        raise ValueError("the disent view needs a dataset without nuisance factors")
    channels, height, width = dataset.observation_shape

    class OurData(disent.GroundTruthData):
        @property
        def factor_names(self) -> tuple[str, ...]:
            return tuple(dataset.factor_names)

        @property
        def factor_sizes(self) -> tuple[int, ...]:
            return tuple(dataset.factors_num_values)

        @property
        def img_shape(self) -> tuple[int, int, int]:
            return (height, width, channels)

        def _get_observation(self, idx: int) -> torch.Tensor:
            return torch.from_numpy(to_float(dataset.store[np.array([idx])])[0])

    return disent.DisentDataset(OurData())


# --- reference implementations -----------------------------------------------------------------


def dlib_beta_vae_loop(
    dataset: GroundTruthDataset, representation: Callable, settings: BetaVAESettings, seed: int
) -> dict[str, float]:
    """dlib's ``beta_vae_sklearn``: one training point at a time, two batches encoded per point."""
    rng = np.random.default_rng(seed)

    def sample(num_points: int) -> tuple[np.ndarray, np.ndarray]:
        features, labels = [], []
        for _ in range(num_points):
            index = int(rng.integers(dataset.num_factors))
            first = dataset.sample_factors(settings.batch_size, rng)
            second = dataset.sample_factors(settings.batch_size, rng)
            second[:, index] = first[:, index]
            codes1 = representation(dataset.sample_observations_from_factors(first, rng))
            codes2 = representation(dataset.sample_observations_from_factors(second, rng))
            features.append(np.mean(np.abs(codes1 - codes2), axis=0))
            labels.append(index)
        return np.array(features), np.array(labels)

    train_x, train_y = sample(settings.num_train)
    model = OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=seed))
    model.fit(train_x, train_y)
    eval_x, eval_y = sample(settings.num_eval)
    return {
        "train_accuracy": float(model.score(train_x, train_y)),
        "eval_accuracy": float(model.score(eval_x, eval_y)),
    }


# --- measurements ------------------------------------------------------------------------------


@dataclass
class Measured:
    """Wall times of repeated runs and the values of the first."""

    seconds: list[float] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    detail: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def add(self, seconds: float, values: dict[str, float], detail: str = "") -> None:
        if not self.seconds:
            self.values, self.detail = {k: float(v) for k, v in values.items()}, detail
        self.seconds.append(seconds)


@dataclass
class Case:
    """One representation of the dataset and everything measured on it."""

    name: str
    description: str
    dataset: GroundTruthDataset
    representation: CodeTable
    suite: dict[str, Measured] = field(default_factory=dict)
    """The engine's suite: per-metric times as ``evaluate`` reports them, and the total."""
    engine: dict[str, Measured] = field(default_factory=dict)
    """The engine's side of each comparison."""
    reference: dict[str, Measured] = field(default_factory=dict)
    """disent's and dlib's side of each comparison."""

    @staticmethod
    def measured(table: dict[str, Measured], key: str) -> Measured:
        return table.setdefault(key, Measured())


def engine_points(case: Case, protocol: Protocol) -> EvalContext:
    """The shared point sets the suite draws (the first points of its streams are the same)."""
    ctx = EvalContext(
        case.dataset, protocol, SEED, case.representation, np.arange(case.dataset.num_factors)
    )
    for role, size in (("train", protocol.dci.num_train), ("test", protocol.dci.num_test)):
        ctx.point_sets[role] = ctx.draw_points(role, size)
    return ctx


def run_engine(case: Case, protocol: Protocol, ctx: EvalContext) -> None:
    """The full suite, then the fast DCI variant on the suite's points."""
    seconds, result = timed(lambda: evaluate(case.representation, case.dataset, protocol, seed=SEED))
    case.measured(case.suite, "total").add(seconds, {})
    for metric, metric_seconds in result.timings.items():
        case.measured(case.suite, metric).add(metric_seconds, _values(result, metric))
    for metric in POINT_METRICS:
        extra = result.timings["points"] if metric in POINT_METRICS else 0.0
        case.measured(case.engine, metric).add(result.timings[metric] + extra, _values(result, metric))
    fast = protocol.override({"dci.estimator": FAST_DCI_ESTIMATOR})
    fast_ctx = EvalContext(
        case.dataset, fast, SEED, case.representation, ctx.scored, point_sets=ctx.point_sets
    )
    seconds, values = timed(lambda: engine_dci.compute(fast_ctx))
    case.measured(case.engine, "dci_fast").add(seconds, values)


def _values(result: EvaluationResult, metric: str) -> dict[str, float]:
    return {k.split(".", 1)[1]: v for k, v in result.items() if k.startswith(f"{metric}.")}


def run_references(
    case: Case, protocol: Protocol, ctx: EvalContext, disent: types.SimpleNamespace
) -> None:
    """disent's four metrics (DCI's scoring is also the plain loop) and dlib's BetaVAE loop."""
    data = disent_dataset(disent, case.dataset)
    rep = case.representation

    def sampling(*sizes: int) -> float:
        np.random.seed(SEED)
        start = time.perf_counter()
        for size in sizes:
            disent.utils.generate_batch_factor_code(data, rep, size, 16)
        return time.perf_counter() - start

    def sampled_then_scored(metric: str, sizes: tuple[int, ...], score: Callable[[], dict]) -> None:
        sample_s = sampling(*sizes)
        score_s, values = timed(score)
        detail = f"sampling {sample_s:.2f} s + _compute_{metric} {score_s:.2f} s on the engine's points"
        case.measured(case.reference, metric).add(sample_s + score_s, values, detail)
        if metric == "dci":
            case.measured(case.reference, "dci_loop").add(score_s, values)

    mig = ctx.points("train", protocol.mig.num_train)
    sampled_then_scored(
        "mig", (protocol.mig.num_train,), lambda: disent._mig._compute_mig(mig.codes.T, mig.factors.T)
    )
    sap = protocol.sap
    sap_train, sap_test = ctx.points("train", sap.num_train), ctx.points("test", sap.num_test)
    sampled_then_scored("sap", (sap.num_train, sap.num_test), lambda: disent._sap._compute_sap(
        sap_train.codes.T, sap_train.factors.T, sap_test.codes.T, sap_test.factors.T, sap.continuous_factors
    ))
    dci = protocol.dci
    dci_train, dci_test = ctx.points("train", dci.num_train), ctx.points("test", dci.num_test)
    sampled_then_scored("dci", (dci.num_train, dci.num_test), lambda: disent._dci._compute_dci(
        dci_train.codes.T, dci_train.factors.T, dci_test.codes.T, dci_test.factors.T
    ))

    fv = protocol.factor_vae
    disent._factor_vae._prune_dims.__defaults__ = (fv.prune_threshold,)
    np.random.seed(SEED)
    seconds, values = timed(lambda: disent._factor_vae.metric_factor_vae(
        data, rep, batch_size=fv.batch_size, num_train=fv.num_train, num_eval=fv.num_eval,
        num_variance_estimate=fv.num_variance_estimate,
    ))
    case.measured(case.reference, "factor_vae").add(seconds, values)


def compare_beta_vae(case: Case, protocol: Protocol) -> None:
    """The engine's BetaVAE score alone and dlib's loop, ``BETA_VAE_PAIRS`` times each,
    alternating which runs first: one run takes well under a second on the engine's side, where a
    single stall of the machine would decide the ratio."""
    def engine() -> dict[str, float]:
        result = evaluate(case.representation, case.dataset, protocol, seed=SEED, metrics=["beta_vae"])
        return _values(result, "beta_vae")

    def loop() -> dict[str, float]:
        return dlib_beta_vae_loop(case.dataset, case.representation, protocol.beta_vae, SEED)

    sides = [(engine, case.engine), (loop, case.reference)]
    for pair in range(BETA_VAE_PAIRS):
        for run, table in sides if pair % 2 == 0 else sides[::-1]:
            seconds, values = timed(run)
            case.measured(table, "beta_vae").add(seconds, values)


@dataclass
class CNNComparison:
    """The BetaVAE score with the trained CNN as the representation, on rendered images."""

    engine_s: float
    loop_s: float
    engine_images: int
    loop_images: int
    engine_values: dict[str, float]
    loop_values: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.loop_s / self.engine_s


def compare_beta_vae_cnn(method: Method, images: GroundTruthDataset, protocol: Protocol) -> CNNComparison:
    """The engine's BetaVAE score given the trained model, and dlib's loop calling it on numpy
    batches, both on ``images``."""
    counter = ImageCounter(method)
    engine_s, result = timed(lambda: evaluate(method, images, protocol, seed=SEED, metrics=["beta_vae"]))
    engine_images, counter.images = counter.images, 0
    loop_s, loop_values = timed(
        lambda: dlib_beta_vae_loop(images, numpy_encoder(method), protocol.beta_vae, SEED)
    )
    return CNNComparison(engine_s, loop_s, engine_images, counter.images, _values(result, "beta_vae"),
                         loop_values)


def print_cnn_comparison(cnn: CNNComparison, images: GroundTruthDataset) -> None:
    print(f"\n== trained: BetaVAE score with the CNN, on {images.name}'s rendered images ==")
    print(f"speedup_vs_dlib_loop[beta_vae_cnn] = {cnn.ratio:.1f}")
    print(f"    wall: engine {cnn.engine_s:.1f} s, dlib_loop {cnn.loop_s:.1f} s")
    print(f"    images encoded: engine {cnn.engine_images}, dlib_loop {cnn.loop_images} "
          f"(the engine encodes each grid point once)")
    print(f"    engine: {_fmt(cnn.engine_values)}")
    print(f"    dlib_loop: {_fmt(cnn.loop_values)}")


# --- report ------------------------------------------------------------------------------------


def speedup(case: Case, metric: str) -> float:
    """disent's (or dlib's loop's) time over the engine's."""
    return case.reference[metric].median / case.engine[metric].median


def loop_ratio(case: Case) -> float:
    """The plain GBT loop's time over the engine's DCI time (fits only, the same points)."""
    return case.reference["dci_loop"].median / case.suite["dci"].median


def fast_speedup(case: Case) -> float:
    """The compatible (gbt) DCI time over the fast variant's, on the same points."""
    return case.suite["dci"].median / case.engine["dci_fast"].median


def fast_gap(case: Case) -> float:
    """The fast variant's disentanglement minus the compatible one's."""
    return case.engine["dci_fast"].values["disentanglement"] - case.suite["dci"].values["disentanglement"]


def _fmt(values: dict[str, float]) -> str:
    """``key=value`` pairs, disent's ``<metric>.`` prefixes dropped."""
    return " ".join(f"{k.split('.', 1)[-1]}={v:.4f}" for k, v in values.items())


def print_suite(case: Case, protocol: Protocol) -> None:
    print(f"\n== {case.name}: full {protocol.name} suite (engine) ==")
    print(f"{'metric':<14}{'wall_s':>9}  values")
    for metric, measured in case.suite.items():
        if metric != "total":
            print(f"{metric:<14}{measured.median:>9.2f}  {_fmt(measured.values)}")
    print(f"{'total':<14}{case.suite['total'].median:>9.2f}")


REFERENCE_NOTES = {
    "mig": "same settings; the same points on both sides",
    "dci": "same settings and points; disent leaves GradientBoostingClassifier's random_state unset and "
           "keeps the code order (the engine seeds it and orders codes canonically)",
    "factor_vae": "same sizes; disent's pruning threshold set to dlib's 0.05 (disent hard-codes 0.0); "
                  "disent draws its own votes, so accuracies differ by sampling noise",
    "sap": "same settings and points; the engine solves LinearSVC's problem exactly, disent fits "
           "scikit-learn's LinearSVC (liblinear, tolerance 1e-4)",
    "beta_vae": "same sizes and liblinear one-vs-rest logistic regression; the loop draws its own points",
}


def reference_name(metric: str) -> str:
    return "dlib_loop" if metric == "beta_vae" else "disent"


def print_comparisons(case: Case) -> None:
    print(f"\n== {case.name}: engine against disent 0.8.0 and dlib's loops ==")
    for metric, note in REFERENCE_NOTES.items():
        other = reference_name(metric)
        engine, reference = case.engine[metric], case.reference[metric]
        detail = f" ({reference.detail})" if reference.detail else ""
        print(f"speedup_vs_{other}[{metric}] ({case.name}) = {speedup(case, metric):.1f}")
        print(f"    wall: engine {engine.median:.2f} s, {other} {reference.median:.2f} s{detail}")
        print(f"    engine: {_fmt(engine.values)}")
        print(f"    {other}: {_fmt(reference.values)}")
        print(f"    note: {note}")
    suite_dci, fast = case.suite["dci"], case.engine["dci_fast"]
    print(f"dci_vs_sklearn_loop ({case.name}) = {loop_ratio(case):.2f}")
    print(f"    wall: engine's DCI {suite_dci.median:.2f} s, plain per-factor GradientBoostingClassifier() "
          f"loop (disent's _compute_dci) {case.reference['dci_loop'].median:.2f} s, same points")
    print(f"fast_dci_speedup ({case.name}) = {fast_speedup(case):.1f}")
    print(f"fast_dci_disentanglement_gap ({case.name}) = {fast_gap(case):+.4f}")
    print(f"    wall: estimator=gbt {suite_dci.median:.2f} s, estimator={FAST_DCI_ESTIMATOR} "
          f"{fast.median:.2f} s, same points")
    print(f"    gbt: {_fmt(suite_dci.values)}")
    print(f"    {FAST_DCI_ESTIMATOR}: {_fmt(fast.values)}")


RATIOS: list[tuple[str, Callable[[Case], float], str, float, str]] = [
    *[
        (f"speedup_vs_{reference_name(m)}[{m}]", partial(speedup, metric=m), ">=", bound, ".1f")
        for m, bound in (("mig", 5), ("dci", 0), ("factor_vae", 5), ("sap", 5), ("beta_vae", 5))
    ],
    ("dci_vs_sklearn_loop", loop_ratio, ">=", 1, ".2f"),
    ("fast_dci_speedup", fast_speedup, ">=", 10, ".1f"),
    ("fast_dci_disentanglement_gap", fast_gap, "|x|<=", 0.05, "+.4f"),
]
"""Summary lines: name, value of one representation, target (bound 0: no target), format."""


def worst(values: list[float], op: str) -> float:
    """The value that decides the target: the smallest ratio, the largest absolute gap."""
    return max(values, key=abs) if op == "|x|<=" else min(values)


def print_summary(cases: Sequence[Case], cnn: CNNComparison) -> None:
    print("\n== ratios (the worse of the two representations; each one's above) ==")
    for label, value, op, _, fmt in RATIOS:
        print(f"{label}: {worst([value(case) for case in cases], op):{fmt}}")
    print(f"speedup_vs_dlib_loop[beta_vae_cnn]: {cnn.ratio:.1f}")
    print("\n== targets ==")
    for label, value, op, bound, fmt in RATIOS:
        if not bound:
            continue
        values = [value(case) for case in cases]
        decisive = worst(values, op)
        met = abs(decisive) <= bound if op == "|x|<=" else decisive >= bound
        cells = ", ".join(f"{case.name} {v:{fmt}}" for case, v in zip(cases, values, strict=True))
        print(f"{label:<32}{op:>6} {bound:<5} {cells:<36} {'met' if met else 'NOT met'}")


# --- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="reduced grid and sizes (smoke run)")
    parser.add_argument("--checkpoint", type=Path, help="use this trained model instead of training one")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every measurement; report medians")
    parser.add_argument("--disent-path", type=Path, default=DEFAULT_DISENT_PATH,
                        help="directory holding disent 0.8.0 (pip install --no-deps --target DIR)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    disent = import_disent(args.disent_path)
    protocol = get_protocol("dlib2019")
    images = get_dataset("dsprites_procedural", **({"sizes": QUICK_GRID} if args.quick else {}))
    if args.quick:
        protocol = protocol.with_sizes(**QUICK_SIZES)
    dataset = index_dataset(images)
    print(f"metrics_speed: protocol {protocol.name}, seed {SEED}, {torch.get_num_threads()} torch threads, "
          f"grid {dataset.factors_num_values} ({len(dataset)} points), {args.rounds} round(s); "
          f"disent {version('disent')}, scikit-learn {version('scikit-learn')}, numpy {version('numpy')}")
    method, codes, trained_what = trained_codes(images, args.checkpoint, args.quick)
    cases = [
        Case("trained", trained_what, dataset, CodeTable(codes)),
        Case("synthetic", "10 dims from the factors (5 tracked, 2 mixed, 3 noise)", dataset,
             CodeTable(synthetic_codes(dataset))),
    ]
    for case in cases:
        print(f"{case.name}: {case.description}")
    for case in cases:
        ctx = engine_points(case, protocol)
        steps = [
            partial(run_engine, case, protocol, ctx),
            partial(run_references, case, protocol, ctx, disent),
            partial(compare_beta_vae, case, protocol),
        ]
        for round_index in range(args.rounds):
            for step in steps if round_index % 2 == 0 else steps[::-1]:
                step()
        print_suite(case, protocol)
        print_comparisons(case)
    cnn = compare_beta_vae_cnn(method, images, protocol)
    print_cnn_comparison(cnn, images)
    print_summary(cases, cnn)
    print(f"\nbenchmark wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
