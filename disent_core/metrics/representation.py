"""Representation kinds: which code of an encoder the metrics score.

disentanglement_lib scores a Gaussian encoder q(z|x) = N(mean(x), diag exp(logvar(x))) through a
postprocessing step (``disentanglement_lib/postprocessing/methods.py`` in
github.com/google-research/disentanglement_lib; Locatello et al., "Challenging Common Assumptions
in the Unsupervised Learning of Disentangled Representations", ICML 2019), and its unsupervised
study scores every model twice (``config/unsupervised_study_v1/postprocess_configs/mean.gin`` and
``sampled.gin``):

- ``mean`` (dlib's ``mean_representation``): r(x) = mean(x).
- ``sampled`` (dlib's ``sampled_representation``): r(x) = mean(x) + exp(logvar(x) / 2) * eps,
  eps ~ N(0, I) drawn anew on every call, so one observation encoded twice gets two codes.

What is scored, per kind of representation given to ``evaluate``:

- an ``Encoder`` module (``disent_core.latents``; every disent_core method is one):
  ``representation(x)`` (mean), or a draw from ``posterior(x)`` of a ``GaussianEncoder``
  (sampled; a method without a posterior, such as DiD, raises ``MetricError``);
- another ``nn.Module``: its output, or the first of a (mean, logvar) pair (mean); sampled needs the
  (mean, logvar) pair;
- a callable on numpy observations: likewise.

``RepresentationFunction.deterministic`` says whether an observation always gets the same code;
only then does the engine reuse the codes of a grid point (``EvalContext.codes_of_grid_points``).
The sampled kind never is. For the mean kind a representation is deterministic unless it
declares ``deterministic = False`` (an attribute of the callable or module): modules run in eval
mode, and a callable is taken to be a function of its input.

Noise (a deviation from dlib, whose ``tf.random_normal`` is unseeded, so its sampled scores change
from run to run): each chunk of observations the engine encodes gets a ``torch.Generator`` seeded
by the next child of the random stream that drew those observations (``sampling.spawn_seed``:
it draws nothing from that stream, so the observations are those of the mean kind). eps is drawn
in float64 on the CPU for the whole chunk, after the representation has returned (mean, logvar)
batch by batch. An evaluation is therefore reproducible for a fixed seed, and its draws do not
depend on the device, the batch size, or which other metrics run. The shared point sets are
encoded once, so the metrics reading them (MIG, DCI, SAP ...) score the same draws, where dlib
calls the representation anew for every metric; each score has the same distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch

from disent_core.errors import MetricError
from disent_core.latents import Encoder, GaussianEncoder, reparameterize

RepresentationKind = Literal["mean", "sampled"]

REPRESENTATION_KINDS: tuple[RepresentationKind, ...] = ("mean", "sampled")
"""Every representation kind, the default first."""

Representation = torch.nn.Module | Callable[[np.ndarray], Any]

CPU_BATCH_SIZE = 64
"""Observations per forward pass of a module on the CPU. Conv encoders run 3 to 4 times faster per
image on the CPU in batches of 32 to 128 than of 1024, whose activations no longer fit in cache
(the standard encoder, ``base_channels`` 32, on 2 cores: 9,000 images/s at 64, 2,600 at 1024);
GPUs take the protocol's whole chunk."""


def declared_deterministic(representation: Representation) -> bool:
    """Whether ``representation`` maps an observation to the same code on every call.

    Args:
        representation: an Encoder, module or callable.

    Returns:
        Its ``deterministic`` attribute, True when it has none.

    Raises:
        TypeError: the attribute is not a bool.
    """
    declared = getattr(representation, "deterministic", True)
    if not isinstance(declared, bool):
        raise TypeError(
            f"the representation's 'deterministic' attribute must be True or False, got {declared!r}"
        )
    return declared


class RepresentationFunction:
    """A representation wrapped for the engine: float32 observations (N, C, H, W) in [0, 1] ->
    validated float64 codes (N, D), the representation called on ``batch_size`` observations at a
    time (None: all it is given)."""

    def __init__(
        self,
        raw: Callable[[np.ndarray], Any],
        kind: RepresentationKind,
        deterministic: bool,
        batch_size: int | None,
    ) -> None:
        self.raw = raw
        self.kind = kind
        self.deterministic = deterministic
        """An observation always gets the same code (never for ``sampled``)."""
        self.batch_size = batch_size

    def __call__(self, observations: np.ndarray, noise_seed: int | None = None) -> np.ndarray:
        """Codes of ``observations``.

        Args:
            observations: float32 (N, C, H, W) in [0, 1].
            noise_seed: seeds the CPU ``torch.Generator`` that eps of the sampled kind is drawn
                from (required for it, ignored by the mean kind).

        Returns:
            Float64 codes (N, D).

        Raises:
            MetricError: the representation's output has the wrong shape or is not finite, or it
                is not a (mean, logvar) pair for the sampled kind.
        """
        step = self.batch_size or len(observations)
        starts = range(0, len(observations), step)
        outputs = [self._output(observations[start : start + step]) for start in starts]
        if self.kind == "mean":
            return outputs[0][0] if len(outputs) == 1 else np.concatenate([mean for mean, _ in outputs])
        if noise_seed is None:
            raise ValueError("the sampled representation needs a noise_seed")
        mean = torch.from_numpy(np.concatenate([mean for mean, _ in outputs]))
        logvar = torch.from_numpy(np.concatenate([logvar for _, logvar in outputs]))
        codes = reparameterize(mean, logvar, torch.Generator().manual_seed(noise_seed)).numpy()
        if not np.all(np.isfinite(codes)):
            raise MetricError("the sampled representation is not finite: exp(logvar / 2) overflows")
        return codes

    def _output(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(codes, None) of the mean kind, (mean, logvar) of the sampled kind, checked."""
        out = self.raw(observations)
        if self.kind == "mean":
            return _checked(out[0] if isinstance(out, tuple | list) else out, len(observations)), None
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise MetricError(
                "the sampled representation draws from a Gaussian posterior: the representation must "
                f"return (mean, logvar), got {type(out).__name__}; score its 'mean' representation instead"
            )
        mean, logvar = (_checked(part, len(observations)) for part in out)
        if mean.shape != logvar.shape:
            raise MetricError(
                f"the representation's mean {mean.shape} and logvar {logvar.shape} differ in shape"
            )
        return mean, logvar


def _checked(out: Any, n: int) -> np.ndarray:
    """``out`` as float64 codes (n, D), D > 0, all finite."""
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().numpy()
    codes = np.asarray(out, dtype=np.float64)
    if codes.ndim != 2 or codes.shape[0] != n:
        raise MetricError(
            f"the representation must return codes of shape (N, D) for N observations; got "
            f"shape {codes.shape} for {n} observations"
        )
    if codes.shape[1] == 0:
        raise MetricError("the representation is empty: it returns codes with 0 dimensions")
    if not np.all(np.isfinite(codes)):
        raise MetricError("the representation returned NaN or infinite codes")
    return codes


@contextmanager
def representation_function(
    representation: Representation,
    kind: RepresentationKind,
    device: str | torch.device | None,
    batch_size: int | None,
) -> Iterator[RepresentationFunction]:
    """``representation`` wrapped as a ``RepresentationFunction`` for the duration of the block.

    A module runs in eval mode under ``torch.inference_mode`` on ``device`` (default: CUDA when
    available, else where the module is), ``batch_size`` observations per forward pass (default
    ``CPU_BATCH_SIZE`` on the CPU, else the whole chunk); its device and mode are restored
    afterwards. A callable gets ``batch_size`` observations per call (default: the whole chunk).

    Args:
        representation: an ``Encoder`` module, another ``nn.Module``, or a numpy callable.
        kind: ``"mean"`` or ``"sampled"`` (``REPRESENTATION_KINDS``).
        device: where a module runs.
        batch_size: observations per call of the representation.

    Yields:
        The wrapped representation.

    Raises:
        TypeError: ``representation`` is neither a module nor callable.
    """
    deterministic = kind == "mean" and declared_deterministic(representation)
    if isinstance(representation, torch.nn.Module):
        module = representation
        parameter = next(module.parameters(), None)
        original = parameter.device if parameter is not None else torch.device("cpu")
        if device is not None:
            target = torch.device(device)
        else:
            target = torch.device("cuda") if torch.cuda.is_available() else original
        was_training = module.training
        if kind == "sampled" and isinstance(module, GaussianEncoder):
            forward = module.posterior
        elif isinstance(module, Encoder):
            forward = module.representation
        else:
            forward = module
        module.to(target).eval()
        batch = batch_size or (CPU_BATCH_SIZE if target.type == "cpu" else None)

        def raw(x: np.ndarray) -> Any:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
                return forward(x.to(target))

        try:
            yield RepresentationFunction(raw, kind, deterministic, batch)
        finally:
            module.to(original).train(was_training)
    elif callable(representation):
        yield RepresentationFunction(representation, kind, deterministic, batch_size)
    else:
        raise TypeError(
            f"representation must be a torch nn.Module or a callable from observations to codes, "
            f"got {type(representation).__name__}"
        )
