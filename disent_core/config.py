"""The typed, validated configuration of one training run.

A ``TrainConfig`` is built from a dict or a YAML file. Unknown keys and invalid values are rejected
with the field's path (``method.beta: Input should be greater than 0``), raised as one
``ConfigError`` listing every problem. ``flat_params()`` flattens it to ``{"method.beta": 4.0, ...}``
for tracking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from disent_core.data.registry import get_entry
from disent_core.errors import ConfigError, UnknownNameError
from disent_core.methods.base import OptimConfig
from disent_core.methods.registry import METHODS, AnyMethodConfig
from disent_core.models.conv64 import Architecture
from disent_core.schedules import ScheduleConfig
from disent_core.validation import error_message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    seed: int = Field(0, ge=0)
    optimizer: OptimConfig = Field(default_factory=OptimConfig)
    lr_multiplier: ScheduleConfig | None = Field(
        None, description="schedule multiplying the learning rate of every optimiser"
    )
    report_every: int = Field(100, ge=1)
    checkpoint_every: int = Field(0, ge=0, description="0: only at the end of training")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: torch's)")
    channels_last: bool = False
    prefetch: int = Field(2, ge=0, description="batches prepared ahead in a background thread")


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
    """The mapping in a YAML file, or a ``ConfigError`` saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
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
