"""Train one model: ``train(config, on_report) -> TrainResult``, with step-exact resume.

A pure function usable from a script, a test, a notebook or a Ray Tune trainable. Per step it draws
one batch from a seeded ``TrainingStream`` (under ``train.data_on_device`` the same batches gathered
from the whole dataset held on the device, ``disent_core.data.resident``), sets every learning rate
(``set_learning_rates``: the method's per-group ``lr_factors`` times the global multiplier), asks the
method for its loss terms, checks that every term is finite (else ``Diverged`` naming the step and
the term), and steps each of the method's optimisers on its own term. Steps count VAE parameter updates.

``train.precision`` ``bf16`` or ``fp16`` runs the method's loss under ``torch.autocast`` in that dtype.
Parameters and optimiser state stay fp32, and the networks return fp32, so the losses are computed in
fp32 from reduced-precision convolutions. fp16 scales the losses with a ``torch.amp.GradScaler``
(checkpointed, its scale reported as the schedule ``grad_scale``); a step whose gradients overflow is
skipped by the scaler, as in any fp16 training. ``fp32``, the default, runs no autocast and no scaler.
The precision changes the numbers, so a checkpoint resumes only with the same one; evaluation always
runs in fp32. On CUDA, ``cudnn.benchmark`` picks the convolution algorithms for the run's fixed shapes.

Every ``report_every`` steps ``on_report`` receives a ``Report``: every scalar loss term, the KL of
each latent dimension, the value of every schedule and learning rate, images per second, and the
live model and dataset (to evaluate during training).
Checkpoints (``checkpoint_dir/checkpoint.pt``, replaced atomically) hold the model, the optimisers,
the schedules, the step, the stream position and the torch generator, so 100 steps + resume + 100
steps equals 200 straight steps bit for bit on CPU. They load with ``torch.load(weights_only=True)``.

Before anything is built, ``train`` refuses a config that this machine cannot run
(``check_runnable``: more torch threads than CPUs, a least memory need above the memory available,
``disent_core.memory``) and a checkpoint to resume that is unreadable, not a training checkpoint or
written with a different configuration (``check_resumable``); callers that must refuse before they
write anything call both first. A checkpoint whose contents do not fit the model raises
``CheckpointError``, never a bare ``KeyError`` or ``RuntimeError``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from disent_core.config import TrainConfig, load_config
from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.registry import get_dataset
from disent_core.data.resident import resident_images, training_stream
from disent_core.errors import CheckpointError, ConfigError, Diverged
from disent_core.memory import check_training_memory
from disent_core.methods.base import Method, MethodContext
from disent_core.methods.registry import build_method
from disent_core.schedules import ScheduledValue

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 1
# config sections that must match for a checkpoint to be resumed (steps and cadences may change)
_RESUME_MUST_MATCH = ("dataset", "method", "model", "train.batch_size", "train.seed", "train.optimizer",
                      "train.precision")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""The autocast dtype of each reduced ``train.precision``; ``fp32`` runs without autocast."""
FP16_INIT_SCALE = 2.0**5
"""The fp16 gradient scaler's first scale. The losses are sums over pixels (thousands of nats at the
start), so torch's default 2**16 overflows and skips the first 11 steps on dSprites before it backs
off to 32."""


@dataclass
class Report:
    """What the trainer tells its caller every ``report_every`` steps."""

    step: int
    terms: dict[str, float]
    latent_information: list[float]
    """The information in each latent dimension (the method's ``information_term``)."""
    information_name: str
    """What ``latent_information`` measures: ``"KL"`` for a VAE, ``"info"`` for DiD's bound."""
    schedules: dict[str, float]
    images_per_sec: float
    checkpoint: Path | None = None
    # the live model and its data, for callers that evaluate during training (not copies: use them
    # inside the callback; the trainer resumes changing the model when the callback returns)
    method: Method | None = field(default=None, repr=False, compare=False)
    dataset: GroundTruthDataset | None = field(default=None, repr=False, compare=False)


@dataclass
class TrainResult:
    step: int
    method: Method
    dataset: GroundTruthDataset
    config: TrainConfig
    last_report: Report | None
    checkpoint: Path | None = None
    reports: list[Report] = field(default_factory=list)


def select_device(choice: str) -> torch.device:
    """``auto``: the CUDA device assigned to this process when there is one, else the CPU."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def _as_float_batch(batch: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = batch.to(device, non_blocking=True)
    x = x.float().mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x.float()
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _check_finite(terms: dict[str, torch.Tensor], step: int) -> None:
    values = torch.cat([t.detach().reshape(-1).float() for t in terms.values()])
    if bool(torch.isfinite(values).all()):
        return
    for name, t in terms.items():
        bad = t.detach().reshape(-1)
        bad = bad[~torch.isfinite(bad)]
        if bad.numel():
            raise Diverged(step, name, float(bad[0]))


def set_learning_rates(
    method: Method,
    optimizers: list[tuple[str, torch.optim.Optimizer]],
    step: int,
    multiplier: float = 1.0,
) -> None:
    """Write every parameter group's learning rate for ``step``: ``base_lr * factor * multiplier``.

    Args:
        method: the method whose ``lr_factors(step)`` give a factor per parameter group (1 where
            it lists none).
        optimizers: the method's ``(loss key, optimizer)`` pairs.
        step: the global step about to be taken.
        multiplier: the global learning-rate multiplier (``train.lr_multiplier`` at ``step``).

    A group's ``base_lr`` is its nominal learning rate: its ``lr`` the first time it is seen here,
    unless the method set it when it built the optimiser. Both are saved with the optimiser.

    Raises:
        ValueError: ``lr_factors`` lists a number of factors other than the optimiser's groups.
    """
    factors = method.lr_factors(step)
    for key, opt in optimizers:
        group_factors = factors.get(key)
        if group_factors is not None and len(group_factors) != len(opt.param_groups):
            raise ValueError(
                f"method {method.name!r}: lr_factors lists {len(group_factors)} factors for the "
                f"{key!r} optimiser, which has {len(opt.param_groups)} parameter groups"
            )
        for i, group in enumerate(opt.param_groups):
            factor = 1.0 if group_factors is None else group_factors[i]
            group["lr"] = group.setdefault("base_lr", group["lr"]) * factor * multiplier


class _Run:
    """The mutable state of one training run (model, optimisers, schedules, data, RNG)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        t = config.train
        self.device = select_device(t.device)
        self.dataset = get_dataset(config.dataset.name, **config.dataset.options)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(t.seed)
        context = MethodContext(
            observation_shape=self.dataset.observation_shape,
            latent_dim=config.model.latent_dim,
            recon=config.model.recon,
            dataset_size=len(self.dataset),
            generator=self.generator,
            base_channels=config.model.base_channels,
            architecture=config.model.architecture,
        )
        with torch.random.fork_rng(devices=[]):  # parameter init draws from a seeded, private stream
            torch.manual_seed(t.seed)
            self.method = build_method(config.method, context)
        self.method.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if t.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.optimizers = self.method.optimizers(t.optimizer)
        self.schedules: dict[str, ScheduledValue] = dict(self.method.schedules())
        self.lr_schedule = t.lr_multiplier.build() if t.lr_multiplier is not None else None
        self.scaler = torch.amp.GradScaler(
            self.device.type, init_scale=FP16_INIT_SCALE, enabled=t.precision == "fp16"
        )
        self.resident = resident_images(self.dataset, self.device, t.data_on_device)
        self.stream = training_stream(self.dataset, t.batch_size, t.seed, t.prefetch, self.resident)
        self.step = 0

    def state_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "config": json.dumps(self.config.model_dump(mode="json"), sort_keys=True),
            "step": self.step,
            "method": self.method.state_dict(),
            "optimizers": {key: opt.state_dict() for key, opt in self.optimizers},
            "schedules": {name: s.state_dict() for name, s in self.schedules.items()},
            "lr_schedule": self.lr_schedule.state_dict() if self.lr_schedule else None,
            "stream": self.stream.state_dict(),
            "generator": self.generator.get_state(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        check_checkpoint(state, self.config)
        try:
            self.method.load_state_dict(state["method"])
            for key, opt in self.optimizers:
                opt.load_state_dict(state["optimizers"][key])
            for name, sched in self.schedules.items():
                sched.load_state_dict(state["schedules"][name])
            if self.lr_schedule is not None and state["lr_schedule"] is not None:
                self.lr_schedule.load_state_dict(state["lr_schedule"])
            self.stream.load_state_dict(state["stream"])
            self.generator.set_state(state["generator"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.step = int(state["step"])
        except _STRUCTURE_ERRORS as exc:
            raise _misfit("checkpoint", exc) from None

    def save(self, directory: Path) -> Path:
        return save_checkpoint(self.state_dict(), directory)


def save_checkpoint(state: dict, directory: str | Path, name: str = CHECKPOINT_NAME) -> Path:
    """Write a checkpoint state as ``directory/name``, atomically (a temporary file, then a rename).

    Args:
        state: what ``torch.save`` writes.
        directory: the checkpoint directory (created when missing).
        name: the file's name.

    Returns:
        The written file; a reader never sees a partly written one.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def _config_differences(saved: dict, current: dict) -> list[str]:
    try:  # a field added since the checkpoint was written compares as its default
        saved = load_config(saved).model_dump(mode="json")
    except ConfigError:
        pass
    out = []
    for key in _RESUME_MUST_MATCH:
        a, b = saved, current
        for part in key.split("."):
            a, b = a.get(part), b.get(part)
        if a != b:
            out.append(f"{key}: checkpoint {a!r}, config {b!r}")
    return out


_STATE_KEYS = ("format", "config", "step", "method", "optimizers", "schedules", "lr_schedule", "stream",
               "generator")
_STRUCTURE_ERRORS = (KeyError, IndexError, RuntimeError, TypeError, ValueError)
"""What loading a state of the wrong structure into the model, optimisers or stream raises."""


def _misfit(source: str | Path, exc: Exception) -> CheckpointError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(
        f"{source} does not fit this model ({type(exc).__name__}: {detail}); it was not written by "
        "`train` for this configuration: resume with the original config or start a fresh run in a new "
        "directory"
    )


def _saved_config(state: Any, source: str | Path) -> dict:
    """The config a checkpoint state records, after checking that the state is a training checkpoint."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{source} holds a {type(state).__name__}, not a checkpoint written by `train`")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}")
    missing = [key for key in _STATE_KEYS if key not in state]
    if missing:
        raise CheckpointError(
            f"{source} is not a checkpoint written by `train`: it lacks {', '.join(missing)}"
        )
    try:
        saved = json.loads(state["config"])
    except (TypeError, ValueError):
        saved = None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{source}: its config is not a JSON mapping; it was not written by `train`")
    return saved


def check_checkpoint(state: Any, config: TrainConfig, source: str | Path = "checkpoint") -> None:
    """Refuse a checkpoint state that a run of ``config`` cannot resume.

    Args:
        state: what ``load_checkpoint`` returned.
        config: the configuration of the run that would resume it.
        source: the checkpoint's path, for messages.

    Raises:
        CheckpointError: the state is not a training checkpoint, or it was written with a
            configuration that differs where a resume needs the same (``dataset``, ``method``,
            ``model``, batch size, seed, optimiser).
    """
    saved = _saved_config(state, source)
    differing = _config_differences(saved, config.model_dump(mode="json"))
    if differing:
        raise CheckpointError(
            f"{source} was written with a different configuration ("
            + ", ".join(differing)
            + "); resume with the original config or start a fresh run in a new directory"
        )


def check_runnable(config: TrainConfig) -> None:
    """Refuse, in well under a second and before anything is allocated, a config this machine cannot run.

    Args:
        config: the training config.

    Raises:
        ConfigError: ``train.threads`` exceeds this machine's CPUs (torch would try to start them
            all), or the run's least memory need exceeds the memory available
            (``disent_core.memory.check_training_memory``).
    """
    cpus = os.cpu_count() or 1
    if config.train.threads is not None and config.train.threads > cpus:
        raise ConfigError(
            f"invalid training config:\n  train.threads: must be <= {cpus}, the CPUs of this machine; "
            "leave it out for torch's default"
        )
    check_training_memory(config)


def check_resumable(path: str | Path, config: TrainConfig) -> None:
    """Refuse, before anything is built or written, a checkpoint that ``train(config, resume_from=path)``
    would refuse.

    Args:
        path: the checkpoint file or the directory holding it.
        config: the configuration to resume with.

    Raises:
        CheckpointError: unreadable, not a training checkpoint, or a different configuration.
    """
    check_checkpoint(load_checkpoint(path), config, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint file (or the checkpoint inside a directory) with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from None


def load_trained(path: str | Path, device: str = "auto") -> tuple[Method, TrainConfig]:
    """The trained method (in eval mode) and its config from a checkpoint written by ``train``."""
    state = load_checkpoint(path)
    try:
        config = load_config(_saved_config(state, path))
    except ConfigError as exc:
        raise CheckpointError(f"{path}: the config it records is not valid: {exc}") from None
    run = _Run(config.model_copy(update={"train": config.train.model_copy(update={"device": device})}))
    try:
        run.method.load_state_dict(state["method"])
    except _STRUCTURE_ERRORS as exc:
        raise _misfit(path, exc) from None
    run.method.eval()
    return run.method, config


def train(
    config: TrainConfig | dict | str | Path,
    on_report: Callable[[Report], None] | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    check_dataset: Callable[[GroundTruthDataset], None] | None = None,
) -> TrainResult:
    """Train until ``config.train.steps`` updates; resume first when ``resume_from`` is given.

    Args:
        config: the training config (object, mapping or YAML path).
        on_report: called with every ``Report`` (every ``train.report_every`` steps and at the end).
        checkpoint_dir: where checkpoints are written (None: none).
        resume_from: a checkpoint to continue from, step-exactly.
        check_dataset: called with the built dataset before the first step; it raises to refuse
            data the caller cannot use (a comparable protocol refuses procedural stand-ins).

    Returns:
        The trained method, its dataset, the config and every report.
    """
    config = load_config(config)
    check_runnable(config)
    state = None
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        check_checkpoint(state, config, resume_from)
    t = config.train
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    run = _Run(config)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    try:
        if check_dataset is not None:
            check_dataset(run.dataset)
        if state is not None:
            run.load_state_dict(state)
        result = TrainResult(run.step, run.method, run.dataset, config, None)
        window_start, window_images = time.perf_counter(), 0
        autocast_dtype = AUTOCAST_DTYPES.get(t.precision)
        run.method.train()
        while run.step < t.steps:
            x = _as_float_batch(next(run.stream), run.device, t.channels_last)
            multiplier = run.lr_schedule(run.step) if run.lr_schedule is not None else 1.0
            set_learning_rates(run.method, run.optimizers, run.step, multiplier)
            with torch.autocast(run.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                terms = run.method.loss(x, run.step)
            _check_finite(terms, run.step)
            for key, opt in run.optimizers:
                opt.zero_grad(set_to_none=True)
                run.scaler.scale(terms[key]).backward()
                run.scaler.step(opt)
            run.scaler.update()
            run.step += 1
            window_images += x.shape[0]
            checkpoint = None
            at_end = run.step == t.steps
            if checkpoint_dir is not None and (
                at_end or (t.checkpoint_every and run.step % t.checkpoint_every == 0)
            ):
                checkpoint = result.checkpoint = run.save(checkpoint_dir)
            if at_end or run.step % t.report_every == 0:
                now = time.perf_counter()
                report = _report(run, terms, window_images / max(now - window_start, 1e-9), checkpoint)
                result.last_report = report
                result.reports.append(report)
                if on_report is not None:
                    on_report(report)
                # time spent in the callback (evaluations, uploads) does not count against img/s
                window_start, window_images = time.perf_counter(), 0
    finally:
        run.stream.close()
    run.method.eval()
    result.step = run.step
    return result


def _report(run: _Run, terms: dict[str, torch.Tensor], ips: float, checkpoint: Path | None) -> Report:
    scalars = {k: float(v.detach()) for k, v in terms.items() if v.dim() == 0}
    schedules = {name: s.last_value for name, s in run.schedules.items() if s.last_value is not None}
    for key, opt in run.optimizers:
        schedules[f"lr.{key}"] = float(opt.param_groups[0]["lr"])
    if run.lr_schedule is not None and run.lr_schedule.last_value is not None:
        schedules["lr_multiplier"] = run.lr_schedule.last_value
    if run.scaler.is_enabled():
        schedules["grad_scale"] = run.scaler.get_scale()
    return Report(
        step=run.step,
        terms=scalars,
        latent_information=terms[run.method.information_term].detach().cpu().tolist(),
        information_name=run.method.information_name,
        schedules=schedules,
        images_per_sec=ips,
        checkpoint=checkpoint,
        method=run.method,
        dataset=run.dataset,
    )
