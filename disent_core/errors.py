"""Typed errors of disent_core, each carrying a message that says what is wrong and how to fix it."""

from __future__ import annotations


class DisentError(Exception):
    """Base class of every error this library raises on purpose."""


class UnknownNameError(DisentError, KeyError):
    """A dataset, method or schedule name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(DisentError):
    """A dataset file is missing, cannot be downloaded, or is corrupt."""


class DataNotFoundError(DataError):
    """A required file is absent and could not be downloaded."""


class ChecksumError(DataError):
    """A file's size or hash differs from the expected one."""


class ConfigError(DisentError, ValueError):
    """A configuration value is invalid; the message names the field's path."""


class CheckpointError(DisentError):
    """A checkpoint cannot be read or does not match the configuration."""


class Diverged(DisentError):
    """A loss term became NaN or Inf."""

    def __init__(self, step: int, term: str, value: float) -> None:
        self.step, self.term, self.value = step, term, value
        super().__init__(
            f"training diverged at step {step}: loss term {term!r} is {value}; lower the learning "
            "rate or the regularisation weight, or check the data"
        )

    def __reduce__(self) -> tuple:  # picklable across processes (Ray ships errors to the driver)
        return (Diverged, (self.step, self.term, self.value))


class MetricError(DisentError):
    """A metric cannot be computed on this representation, dataset or protocol; the message says why."""
