"""Train N members of one method and architecture as one model: ``train_population``.

Each member is what ``disent_core.train.train`` would build for its config: its ``Method`` built
under ``torch.random.fork_rng`` seeded with its seed, its own ``torch.Generator`` (seeded with its
seed) in its ``MethodContext``, its own schedules, and the ``TrainingStream`` of its seed (members
with equal seeds share one stream: their batches are the same). The heavy networks (encoder,
decoder, FactorVAE's discriminator, DeVAE's hierarchy) are then fused (``fused.FusedNetwork``: the
members' parameters stacked, run with ``vmap``) and each member's module is re-pointed at its slice,
so a member's ``Method`` always holds its live parameters. One optimiser per loss key covers the
stacked parameters of every member: Adam is elementwise, so with equal settings (a population
requires them) it is each member's Adam, and ``set_learning_rates`` sets its rate as the single
trainer does.

One step: one batch from each member's stream, ``set_learning_rates``, the fused loss of every
member (``methods.FusedMethod.loss``, under ``torch.autocast`` for ``train.precision: bf16`` as in
``train``; fp16 is refused), one finiteness check of every member's terms (a single host sync for
the population, where N single trainers sync N times), then per loss key ``zero_grad``, backward of
the sum of the members' terms (each member's parameters receive exactly its own gradient, the
sum's derivative being 1) and one optimiser step.

Divergence: a member whose terms are not all finite is reported failed (``MemberResult.failure``, the
``Diverged`` the single trainer would raise, with its step, term and value; ``on_failure`` is
called). Its state is frozen as it was at the start of the failing step (parameters, optimiser,
schedules, generator and stream position), which is exactly the checkpoint a single training would
resume to reproduce the divergence, and the member is dropped from the stack; the others' step is
taken unchanged. A deliberate deviation from ``train``: the population goes on instead of raising.

Checkpoints (``checkpoint_dir/population.pt``, replaced atomically, ``weights_only``-loadable) hold
the step and each member's state in exactly the single trainer's format (the keys of ``train``'s
``_Run.state_dict``), plus the failures. ``member_checkpoint`` / ``extract_member_checkpoint`` give a
member's state, which ``train(config, resume_from=...)`` and ``load_trained`` accept as they would
a checkpoint of its own training; ``train_population(resume_from=...)`` resumes step-exactly.

Reports: every ``report_every`` steps and at the end, ``on_report(index, report)`` receives each live
member's ``Report`` (the dataclass of ``disent_core.train``): its terms, per-dimension information,
schedules, learning rates, its own images/s (its batch size per step; the population's throughput
is the sum over members), the population checkpoint path, and its live method.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from disent_core.config import TrainConfig, load_config
from disent_core.data.dataset import GroundTruthDataset
from disent_core.data.registry import get_dataset
from disent_core.data.resident import resident_images, training_stream
from disent_core.errors import CheckpointError, ConfigError, Diverged
from disent_core.memory import available_memory, estimate_training_memory, format_bytes
from disent_core.methods.base import Method, MethodContext
from disent_core.methods.registry import build_method
from disent_core.population.compat import check_population
from disent_core.population.fused import FusedNetwork, member_optimizer_state, stack_optimizer_states
from disent_core.population.methods import FUSED_METHODS, Terms
from disent_core.schedules import ScheduledValue
from disent_core.train import (
    AUTOCAST_DTYPES,
    CHECKPOINT_FORMAT,
    Report,
    check_checkpoint,
    check_runnable,
    load_checkpoint,
    save_checkpoint,
    select_device,
    set_learning_rates,
)

POPULATION_CHECKPOINT_NAME = "population.pt"
POPULATION_FORMAT = 1
_STRUCTURE_ERRORS = (KeyError, IndexError, RuntimeError, TypeError, ValueError)


@dataclass
class MemberResult:
    """One member's outcome.

    Attributes:
        index: the member's position in the config list.
        config: its training config.
        method: its trained method (in eval mode, with its own parameters), or for a failed member
            its method at the start of the failing step.
        step: the updates it made (the failing step for a failed member).
        reports: every report it received.
        last_report: the latest of them.
        failure: the ``Diverged`` that stopped it, or None.
    """

    index: int
    config: TrainConfig
    method: Method
    step: int
    reports: list[Report] = field(default_factory=list)
    last_report: Report | None = None
    failure: Diverged | None = None


@dataclass
class PopulationResult:
    """What ``train_population`` returns: the population's step and each member's outcome."""

    step: int
    members: list[MemberResult]
    dataset: GroundTruthDataset
    checkpoint: Path | None = None


class _Member:
    """One member's own objects: config, method, generator, schedules; its failure once it fails."""

    def __init__(self, index: int, config: TrainConfig, method: Method, generator: torch.Generator) -> None:
        self.index = index
        self.config = config
        self.seed = config.train.seed
        self.method = method
        self.generator = generator
        self.schedules: dict[str, ScheduledValue] = dict(method.schedules())
        self.failure: Diverged | None = None
        self.frozen: dict | None = None
        """A failed member's single-model checkpoint state at the start of the failing step."""


class Population:
    """The mutable state of a population run (members, fused networks, optimisers, streams, step).

    Args:
        configs: the members' configs (validated by ``check_population``).
        state: a population checkpoint state to resume from (``load_population_checkpoint``).
        source: the checkpoint's path, for messages.

    Raises:
        ConfigError: the members cannot train as one population.
        CheckpointError: ``state`` does not fit these members.
    """

    def __init__(
        self, configs: Sequence[TrainConfig], state: dict | None = None, source: str | Path = "checkpoint"
    ) -> None:
        check_population(configs)
        t = configs[0].train
        self.train_settings = t
        self.device = select_device(t.device)
        if self.device.type == "cuda":  # as train's _Run: the fixed shapes let cuDNN pick its algorithms
            torch.backends.cudnn.benchmark = True
        self.autocast_dtype = AUTOCAST_DTYPES.get(t.precision)
        self.dataset = get_dataset(configs[0].dataset.name, **configs[0].dataset.options)
        self.fused_method = FUSED_METHODS[configs[0].method.name]
        self.members = [self._build_member(i, config) for i, config in enumerate(configs)]
        resident = resident_images(self.dataset, self.device, t.data_on_device)  # one copy for every seed
        self.streams = {
            seed: training_stream(self.dataset, t.batch_size, seed, t.prefetch, resident)
            for seed in dict.fromkeys(m.seed for m in self.members)
        }
        self.lr_schedule = t.lr_multiplier.build() if t.lr_multiplier is not None else None
        self.step = 0
        optimizer_states = self._load(state, source) if state is not None else None
        self.alive = [m for m in self.members if m.failure is None]
        self.networks: dict[str, FusedNetwork] = {}
        self.optimizers: list[tuple[str, torch.optim.Optimizer]] = []
        if self.alive:
            self._fuse(optimizer_states, source)

    # --- building ----------------------------------------------------------------------------
    def _build_member(self, index: int, config: TrainConfig) -> _Member:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(config.train.seed)
        context = MethodContext(
            observation_shape=self.dataset.observation_shape,
            latent_dim=config.model.latent_dim,
            recon=config.model.recon,
            dataset_size=len(self.dataset),
            generator=generator,
            base_channels=config.model.base_channels,
            architecture=config.model.architecture,
        )
        with torch.random.fork_rng(devices=[]):  # as train's _Run: a seeded, private init stream
            torch.manual_seed(config.train.seed)
            method = build_method(config.method, context)
        method.to(self.device)
        return _Member(index, config, method, generator)

    def _fuse(self, optimizer_states: list[dict] | None, source: str | Path) -> None:
        template = self.alive[0].method
        names = {id(p): (net, name) for net in self.fused_method.networks
                 for name, p in getattr(template, net).named_parameters()}
        outside = [name for name, p in template.named_parameters() if id(p) not in names]
        if outside:
            raise ValueError(f"method {template.name!r} has parameters outside its fused networks: {outside}")
        self._layout = [
            (key, type(opt), opt.defaults,
             [({k: v for k, v in group.items() if k != "params"}, [names[id(p)] for p in group["params"]])
              for group in opt.param_groups])
            for key, opt in template.optimizers(self.train_settings.optimizer)
        ]
        self.networks = {net: FusedNetwork([getattr(m.method, net) for m in self.alive])
                         for net in self.fused_method.networks}
        self._alias()
        self.optimizers = self._make_optimizers()
        if optimizer_states is not None:
            try:
                for key, opt in self.optimizers:
                    states = [s[key] for s in optimizer_states]
                    opt.load_state_dict(stack_optimizer_states(states, self._shapes(key, stacked=False)))
            except _STRUCTURE_ERRORS as exc:
                raise _misfit(source, exc) from None

    def _alias(self) -> None:
        for net, fused in self.networks.items():
            fused.alias([getattr(m.method, net) for m in self.alive])

    def _make_optimizers(self) -> list[tuple[str, torch.optim.Optimizer]]:
        return [
            (key, cls([{**options, "params": [self.networks[net].params[name] for net, name in refs]}
                       for options, refs in groups], **defaults))
            for key, cls, defaults, groups in self._layout
        ]

    def _shapes(self, key: str, stacked: bool) -> list[torch.Size]:
        opt = dict(self.optimizers)[key]
        return [p.shape if stacked else p.shape[1:] for group in opt.param_groups for p in group["params"]]

    # --- checkpoints -------------------------------------------------------------------------
    def _load(self, state: dict, source: str | Path) -> list[dict]:
        """Load the members' own state (before fusing); returns the live members' optimiser states."""
        members, failures = state["members"], state["failures"]
        if len(members) != len(self.members):
            raise CheckpointError(
                f"{source} holds a population of {len(members)} members; the configs give {len(self.members)}"
            )
        optimizer_states = []
        for m, saved, failure in zip(self.members, members, failures, strict=True):
            check_checkpoint(saved, m.config, f"{source} (member {m.index})")
            try:
                m.method.load_state_dict(saved["method"])
                for name, schedule in m.schedules.items():
                    schedule.load_state_dict(saved["schedules"][name])
                m.generator.set_state(saved["generator"])
                if failure is not None:
                    m.failure = Diverged(int(failure["step"]), str(failure["term"]), float(failure["value"]))
                    m.frozen = saved
                    continue
                if int(saved["step"]) != int(state["step"]):
                    raise ValueError(
                        f"member {m.index} is at step {saved['step']}, the population at {state['step']}"
                    )
                self.streams[m.seed].load_state_dict(saved["stream"])
                if self.lr_schedule is not None and saved["lr_schedule"] is not None:
                    self.lr_schedule.load_state_dict(saved["lr_schedule"])
            except _STRUCTURE_ERRORS as exc:
                raise _misfit(source, exc) from None
            optimizer_states.append(saved["optimizers"])
        self.step = int(state["step"])
        return optimizer_states

    def _member_state(
        self, member: _Member, position: int, generator: torch.Tensor, schedules: dict, stream: dict
    ) -> dict:
        """``member``'s state in the single trainer's checkpoint format (keys of ``_Run.state_dict``)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": json.dumps(member.config.model_dump(mode="json"), sort_keys=True),
            "step": self.step,
            "method": {k: v.clone() for k, v in member.method.state_dict().items()},
            "optimizers": {
                key: member_optimizer_state(opt.state_dict(), position, self._shapes(key, stacked=True))
                for key, opt in self.optimizers
            },
            "schedules": schedules,
            "lr_schedule": self.lr_schedule.state_dict() if self.lr_schedule is not None else None,
            "stream": stream,
            "generator": generator,
            "scaler": {},  # the state of a disabled GradScaler: populations refuse fp16
        }

    def member_state(self, index: int) -> dict:
        """Member ``index``'s checkpoint state, in the single trainer's format.

        Args:
            index: the member's position in the config list.

        Returns:
            What ``disent_core.train`` would save for the member now (its frozen state when it
            failed), with tensors of its own (not views of the stack).
        """
        member = self.members[index]
        if member.frozen is not None:
            return member.frozen
        return self._member_state(
            member,
            self.alive.index(member),
            member.generator.get_state(),
            {name: s.state_dict() for name, s in member.schedules.items()},
            self.streams[member.seed].state_dict(),
        )

    def state_dict(self) -> dict:
        """The population checkpoint: its step, each member's single-format state, the failures.

        Returns:
            ``{"format", "kind": "population", "step", "members", "failures"}``; ``failures[i]`` is
            None or member i's ``{"step", "term", "value"}``.
        """
        return {
            "format": POPULATION_FORMAT,
            "kind": "population",
            "step": self.step,
            "members": [self.member_state(i) for i in range(len(self.members))],
            "failures": [None if m.failure is None else
                         {"step": m.failure.step, "term": m.failure.term, "value": m.failure.value}
                         for m in self.members],
        }

    def save(self, directory: Path) -> Path:
        """Write ``state_dict()`` to ``directory/population.pt`` atomically.

        Args:
            directory: the checkpoint directory (created when missing).

        Returns:
            The checkpoint's path.
        """
        return save_checkpoint(self.state_dict(), directory, POPULATION_CHECKPOINT_NAME)

    # --- training ----------------------------------------------------------------------------
    def train_step(self) -> list[tuple[_Member, Terms]]:
        """One update of every live member; members whose terms are not finite fail instead.

        Returns:
            (member, its terms) of each member that took the step.
        """
        alive = self.alive
        before = [(m.generator.get_state(), {name: s.state_dict() for name, s in m.schedules.items()})
                  for m in alive]
        seeds = list(dict.fromkeys(m.seed for m in alive))
        streams_before = {seed: self.streams[seed].state_dict() for seed in seeds}
        batches = {seed: next(self.streams[seed]) for seed in seeds}
        x = torch.stack([batches[m.seed] for m in alive]).to(self.device, non_blocking=True)
        x = x.float().mul_(1.0 / 255.0) if x.dtype == torch.uint8 else x.float()
        multiplier = self.lr_schedule(self.step) if self.lr_schedule is not None else 1.0
        set_learning_rates(alive[0].method, self.optimizers, self.step, multiplier)
        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            terms = self.fused_method.loss(self.networks, [m.method for m in alive], x, self.step)
        failed = self._failures(terms)
        for position, error in failed.items():
            member = alive[position]
            generator, schedules = before[position]
            stream = streams_before[member.seed]
            member.frozen = self._member_state(member, position, generator, schedules, stream)
            member.failure = error
            member.generator.set_state(generator)
            for name, schedule in member.schedules.items():
                schedule.load_state_dict(schedules[name])
            for net in self.networks:
                FusedNetwork.release(getattr(member.method, net))
        keep = [p for p in range(len(alive)) if p not in failed]
        for key, opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
            if keep:
                torch.stack([terms[p][key] for p in keep]).sum().backward()
                opt.step()
        if failed:
            self._keep(keep)
        if keep:
            self.step += 1
        return [(alive[p], terms[p]) for p in keep]

    def _failures(self, terms: list[Terms]) -> dict[int, Diverged]:
        values = torch.cat([t.detach().reshape(-1).float() for member in terms for t in member.values()])
        if bool(torch.isfinite(values).all()):
            return {}
        found = {}
        for position, member in enumerate(terms):
            for name, t in member.items():
                bad = t.detach().reshape(-1)
                bad = bad[~torch.isfinite(bad)]
                if bad.numel():
                    found[position] = Diverged(self.step, name, float(bad[0]))
                    break
        return found

    def _keep(self, keep: list[int]) -> None:
        """Drop every member of the stack but those at positions ``keep``."""
        states = {key: opt.state_dict() for key, opt in self.optimizers}
        stacked_shapes = {key: self._shapes(key, stacked=True) for key, _ in self.optimizers}
        self.alive = [self.alive[p] for p in keep]
        for seed in set(self.streams) - {m.seed for m in self.alive}:
            self.streams[seed].close()
        if not self.alive:
            self.networks, self.optimizers = {}, []
            return
        for fused in self.networks.values():
            fused.select(keep)
        self._alias()
        self.optimizers = self._make_optimizers()
        for key, opt in self.optimizers:
            members = [member_optimizer_state(states[key], p, stacked_shapes[key]) for p in keep]
            opt.load_state_dict(stack_optimizer_states(members, self._shapes(key, stacked=False)))

    def reports(
        self, stepped: list[tuple[_Member, Terms]], images_per_sec: float, checkpoint: Path | None
    ) -> list[tuple[_Member, Report]]:
        """Each member's ``Report`` of the step that gave ``stepped`` (two host syncs in all).

        Args:
            stepped: what ``train_step`` returned.
            images_per_sec: each member's images per second over the report window.
            checkpoint: the population checkpoint written at this step, if any.

        Returns:
            (member, its report) pairs.
        """
        scalars = [[(k, v) for k, v in terms.items() if v.dim() == 0] for _, terms in stepped]
        values = iter(torch.stack([v.detach().double() for row in scalars for _, v in row]).tolist())
        information = torch.stack(
            [terms[m.method.information_term].detach().double() for m, terms in stepped]
        ).tolist()
        rates = {f"lr.{key}": float(opt.param_groups[0]["lr"]) for key, opt in self.optimizers}
        if self.lr_schedule is not None and self.lr_schedule.last_value is not None:
            rates["lr_multiplier"] = self.lr_schedule.last_value
        out = []
        for (member, _), row, info in zip(stepped, scalars, information, strict=True):
            schedules = {name: s.last_value for name, s in member.schedules.items()
                         if s.last_value is not None}
            out.append((member, Report(
                step=self.step,
                terms={k: next(values) for k, _ in row},
                latent_information=info,
                information_name=member.method.information_name,
                schedules={**schedules, **rates},
                images_per_sec=images_per_sec,
                checkpoint=checkpoint,
                method=member.method,
                dataset=self.dataset,
            )))
        return out

    def release(self) -> None:
        """Give every live member's method its own parameters (the fused state is left as it is)."""
        for member in self.alive:
            for net in self.networks:
                FusedNetwork.release(getattr(member.method, net))

    def close(self) -> None:
        """Stop every stream's prefetching thread."""
        for stream in self.streams.values():
            stream.close()


def _misfit(source: str | Path, exc: Exception) -> CheckpointError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(
        f"{source} does not fit this population ({type(exc).__name__}: {detail}); resume with the configs "
        "that wrote it, in the same order"
    )


def check_population_memory(configs: Sequence[TrainConfig]) -> None:
    """Refuse a population whose least memory need exceeds the memory available now.

    The need is N times one member's model estimate (``disent_core.memory``) on the model's device,
    and one data stream's batches per distinct seed in host memory.

    Args:
        configs: the members' configs.

    Raises:
        ConfigError: the need, what is available, and what to lower.
    """
    estimate = estimate_training_memory(configs[0])
    model = len(configs) * estimate.model
    batches = len({c.train.seed for c in configs}) * estimate.batches
    host = available_memory()
    if estimate.device == "cuda":
        needs = [("GPU", model, torch.cuda.mem_get_info()[0]), ("host", batches, host)]
    else:
        needs = [("host", model + batches, host)]
    for where, needed, available in needs:
        if available is not None and needed > available:
            raise ConfigError(
                f"a population of {len(configs)} members needs at least {format_bytes(needed)} of {where} "
                f"memory but {format_bytes(available)} is available ({format_bytes(estimate.model)} per "
                "member); train fewer members per population, or lower train.batch_size or "
                "model.base_channels"
            )


def load_population_checkpoint(path: str | Path) -> dict:
    """Read a population checkpoint (a file, or ``population.pt`` in a directory).

    Args:
        path: the checkpoint file or its directory.

    Returns:
        The state ``Population.state_dict`` saved.

    Raises:
        CheckpointError: missing, unreadable, or not a population checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / POPULATION_CHECKPOINT_NAME
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("kind") != "population":
        raise CheckpointError(f"{path} is not a population checkpoint written by `train_population`")
    if state.get("format") != POPULATION_FORMAT:
        raise CheckpointError(f"{path}: population format {state.get('format')} is not {POPULATION_FORMAT}")
    if not (isinstance(state.get("members"), list) and isinstance(state.get("failures"), list)
            and len(state["members"]) == len(state["failures"])):
        raise CheckpointError(f"{path} lacks its members' states; it was not written by `train_population`")
    return state


def member_checkpoint(source: str | Path | dict, index: int) -> dict:
    """Member ``index``'s state from a population checkpoint, in the single trainer's format.

    Args:
        source: a population checkpoint path (file or directory) or its loaded state.
        index: the member's position in the population's config list.

    Returns:
        A checkpoint state that ``disent_core.train`` resumes and ``load_trained`` reads.

    Raises:
        CheckpointError: not a population checkpoint, or no member ``index``.
    """
    state = source if isinstance(source, dict) else load_population_checkpoint(source)
    members = state["members"]
    if not 0 <= index < len(members):
        raise CheckpointError(f"the population has members 0 to {len(members) - 1}, not {index}")
    return members[index]


def extract_member_checkpoint(source: str | Path | dict, index: int, directory: str | Path) -> Path:
    """Write member ``index``'s checkpoint as ``directory/checkpoint.pt``, a single model's checkpoint.

    Args:
        source: a population checkpoint path (file or directory) or its loaded state.
        index: the member's position in the population's config list.
        directory: where to write it (created when missing).

    Returns:
        The written file, for ``train(config, resume_from=...)`` or ``load_trained``.
    """
    return save_checkpoint(member_checkpoint(source, index), directory)


def train_population(
    configs: Sequence[TrainConfig | dict | str | Path],
    on_report: Callable[[int, Report], None] | None = None,
    *,
    on_failure: Callable[[int, Diverged], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    check_dataset: Callable[[GroundTruthDataset], None] | None = None,
) -> PopulationResult:
    """Train every member until ``train.steps`` updates, as one model; resume first when asked.

    Args:
        configs: the members' training configs (objects, mappings or YAML paths); they may differ
            only where ``check_population`` allows.
        on_report: called with (member index, ``Report``) for every live member every
            ``train.report_every`` steps and at the end.
        on_failure: called with (member index, ``Diverged``) when a member's terms stop being finite.
        checkpoint_dir: where ``population.pt`` is written (None: nowhere).
        resume_from: a population checkpoint to continue from, step-exactly.
        check_dataset: called with the built dataset before the first step; it raises to refuse
            it (as ``train``'s).

    Returns:
        The population's step and each member's result (its method released from the stack).

    Raises:
        ConfigError: members that cannot train as one population, or a population this machine
            cannot hold.
        CheckpointError: ``resume_from`` does not fit the configs.
    """
    members = [load_config(c) for c in configs]
    check_population(members)
    check_runnable(members[0])
    check_population_memory(members)
    state = load_population_checkpoint(resume_from) if resume_from is not None else None
    t = members[0].train
    if t.threads is not None:
        torch.set_num_threads(t.threads)
    population = Population(members, state, resume_from or "checkpoint")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    results = [MemberResult(m.index, m.config, m.method, m.failure.step if m.failure else population.step,
                            failure=m.failure)
               for m in population.members]
    result = PopulationResult(population.step, results, population.dataset)
    try:
        if check_dataset is not None:
            check_dataset(population.dataset)
        for m in population.members:
            m.method.train()
        window_start, window_steps = time.perf_counter(), 0
        while population.step < t.steps and population.alive:
            live = list(population.alive)
            stepped = population.train_step()
            for m in live:
                if m.failure is not None:
                    results[m.index].failure, results[m.index].step = m.failure, m.failure.step
                    if on_failure is not None:
                        on_failure(m.index, m.failure)
            window_steps += 1
            at_end = population.step == t.steps
            checkpoint = None
            if checkpoint_dir is not None and (
                at_end or (t.checkpoint_every and population.step % t.checkpoint_every == 0)
            ):
                checkpoint = result.checkpoint = population.save(checkpoint_dir)
            if stepped and (at_end or population.step % t.report_every == 0):
                ips = window_steps * t.batch_size / max(time.perf_counter() - window_start, 1e-9)
                for m, report in population.reports(stepped, ips, checkpoint):
                    results[m.index].reports.append(report)
                    results[m.index].last_report = report
                    if on_report is not None:
                        on_report(m.index, report)
                window_start, window_steps = time.perf_counter(), 0
    finally:
        population.close()
    population.release()
    for m in population.alive:
        results[m.index].step = population.step
    for m in population.members:
        m.method.eval()
    result.step = population.step
    return result
