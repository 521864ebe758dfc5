"""The typed, validated configuration of one training run.

A ``TrainConfig`` is built from a dict or a YAML file. Unknown keys and invalid values are rejected
with the field's path (``method.beta: Input should be greater than 0``), raised as one
``ConfigError`` listing every problem. ``flat_params()`` flattens it to ``{"method.beta": 4.0, ...}``
for tracking.

Validation refuses what would only fail later: dataset options that the dataset's factory does not
take or whose type is wrong (checked against its signature, nothing is loaded), seeds beyond
``MAX_SEED``, and Adam settings that are not finite or (betas) outside [0, 1). What depends on the
machine that trains (``train.threads`` against its CPUs, the memory a run needs) is checked by
``disent_core.train.check_runnable`` there: a config is also validated on machines that only read
it, such as a cluster's driver.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticSchemaGenerationError,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from disent_core.data.registry import get_entry
from disent_core.errors import ConfigError, UnknownNameError
from disent_core.methods.base import OptimConfig
from disent_core.methods.registry import METHODS, AnyMethodConfig
from disent_core.models.conv64 import Architecture
from disent_core.schedules import ScheduleConfig
from disent_core.validation import error_message

MAX_SEED = 2**63 - 1
"""The largest training or evaluation seed: torch's generators take seeds below 2**64, and seeds are
stored as signed 64-bit integers in results tables."""
_ANY_TYPE = ConfigDict(arbitrary_types_allowed=True)
Precision = Literal["fp32", "bf16", "fp16"]
"""``train.precision``: the training step's arithmetic (``disent_core.train`` gives the dtypes)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def dataset_option_problems(name: str, options: dict[str, Any]) -> list[str]:
    """What is wrong with ``options`` for the dataset ``name``, found without loading any data.

    Each option is checked against the keyword parameters of the dataset's factory: an option the
    factory does not take is refused (unless the factory passes extra options on with ``**kw``,
    whose targets are checked when the data is built), and a value is validated against the
    parameter's type annotation (``cache: Literal["lazy", "packed"]`` refuses ``cache: bogus``).

    Args:
        name: a registered dataset name (or alias).
        options: the dataset's keyword options.

    Returns:
        One message per problem, empty when every option fits.
    """
    entry = get_entry(name)
    factory = entry.load_factory()
    parameters = inspect.signature(factory).parameters
    takes_more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    named = [key for key, p in parameters.items()
             if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    try:
        hints = typing.get_type_hints(factory)
    except (NameError, TypeError):
        hints = {}
    problems = []
    for key, value in options.items():
        if key not in named:
            if not takes_more:
                problems.append(f"dataset {entry.name!r} has no option {key!r}; its options are: "
                                f"{', '.join(named) or 'none'}")
            continue
        if key not in hints:
            continue
        try:
            adapter: TypeAdapter = TypeAdapter(hints[key], config=_ANY_TYPE)
        except PydanticSchemaGenerationError:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            problems.append(f"{key}: {error_message(first)}, got {value!r}")
    return problems


class DatasetConfig(_Strict):
    name: str = Field(description="registered dataset name, see `disent-study datasets list`")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the dataset")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            get_entry(name)
        except UnknownNameError as exc:
            raise ValueError(str(exc)) from None
        return name

    @field_validator("options")
    @classmethod
    def _options_fit_the_dataset(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("name")
        if name is None:  # an unknown name is reported on its own
            return options
        problems = dataset_option_problems(name, options)
        if problems:
            raise ValueError("; ".join(problems))
        return options


class ModelConfig(_Strict):
    latent_dim: int = Field(10, ge=1, le=65536)
    base_channels: int = Field(32, ge=1)
    architecture: Architecture = Field(
        "dlib",
        description="conv encoder/decoder: dlib (Locatello et al.) or erow (the DeVAE/DEFT authors' port)",
    )
    recon: Literal["bernoulli", "l2"] = Field(
        "bernoulli", description="reconstruction loss; dlib's unsupervised study uses bernoulli everywhere"
    )


class TrainSettings(_Strict):
    steps: int = Field(ge=1, description="VAE parameter updates")
    steps_note: str | None = Field(
        None, description="why this run's steps differ from its study's train.steps (recorded with the run)"
    )
    batch_size: int = Field(64, ge=2)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    optimizer: OptimConfig = Field(default_factory=OptimConfig)
    lr_multiplier: ScheduleConfig | None = Field(
        None, description="schedule multiplying the learning rate of every optimiser"
    )
    report_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(0, ge=0, description="0: only at the end of training")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(
        None, ge=1, description="torch intra-op threads (default: torch's), at most the machine's CPUs"
    )
    channels_last: bool = False
    precision: Precision = Field(
        "fp32",
        description="arithmetic of the training step: fp32 (the reference), or bf16/fp16 autocast (fp16 with "
        "a gradient scaler); reduced precision changes the numbers (recorded with them) and is faster only "
        "on hardware with that arithmetic (a GPU, a CPU with avx512_bf16 or AMX; elsewhere much slower)",
    )
    prefetch: int = Field(2, ge=0, description="batches prepared ahead in a background thread")
    data_on_device: Literal["auto"] | bool = Field(
        "auto",
        description="hold the whole dataset on the training device and gather batches there (the same "
        "batches): auto on CUDA when it fits in half the free memory and has no transform, true always "
        "(refused when it cannot), false never (batches made on the host)",
    )


class TrainConfig(_Strict):
    dataset: DatasetConfig
    method: AnyMethodConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainSettings

    def flat_params(self) -> dict[str, Any]:
        """``{"method.beta": 4.0, "train.optimizer.lr": 1e-4, ...}`` with lists kept as lists."""
        return _flatten(self.model_dump(mode="json"))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _error_lines(exc: ValidationError, data: Any) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # pydantic inserts the union member's tag ("beta_vae") into the path: drop it
        if len(loc) >= 2 and loc[0] == "method" and loc[1] in METHODS:
            loc.pop(1)
        message = error_message(err)
        if err["type"] == "union_tag_invalid" and loc == ["method"]:
            name = data.get("method", {}).get("name") if isinstance(data, dict) else None
            message = METHODS.unknown_message(name)
        lines.append(f"{'.'.join(loc) or '<root>'}: {message}")
    return lines


def read_config_file(
    path: str | Path, expected: str = "a mapping with dataset, method, model and train"
) -> dict:
    """The mapping in a YAML file, or a ``ConfigError`` saying what is wrong with the file.

    Args:
        path: the YAML file.
        expected: what the file should hold, for the message when it holds something else.

    Returns:
        The mapping.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} is a directory, not a config file; give the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected {expected}")
    return data


def load_config(source: TrainConfig | dict | str | Path) -> TrainConfig:
    """A ``TrainConfig`` from an instance, a dict or a YAML file path."""
    if isinstance(source, TrainConfig):
        return source
    data = read_config_file(source) if isinstance(source, str | Path) else source
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid training config:\n  " + "\n  ".join(_error_lines(exc, data))) from None
