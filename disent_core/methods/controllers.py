"""Closed-loop beta schedules: PI controllers that read the measured batch KL every step.

A ``KLController`` is a ``ScheduledValue`` (reported and checkpointed like a schedule) whose value
depends on the detached batch KL as well as on the global step. Its whole state (integral term,
EMA, previous beta and error ...) is plain floats in ``state_dict``, so the trainer checkpoints it
and a resumed run continues step-exactly; the value it reports is ``last_value`` (the beta of the
latest step). It advances once per global step:
evaluating the loss again at the same step recomputes that step from the state before it.

- ``PIControl``: ControlVAE (Shao et al., "ControlVAE: Controllable Variational Autoencoder", ICML
  2020), as in erow/disentanglement_lib ``PIDControl``:

      C(t) = min(C, C_init + c_step * (floor(t / period) + 1))   (the code raises C at t = 0, period, ...)
      e = C(t) - KL,   P = K_p / (1 + exp(e)) + 1,   I = I_prev + K_i * e
      anti-windup: I = I_prev when the previous unclipped output W_prev < beta_min (W_prev starts at 1)
      W = P + I,   beta = max(W, beta_min)

- ``IncrementalPIControl``: DynamicVAE (Shao et al., "Rethinking Controllable Variational
  Autoencoders", CVPR 2022), as in erow/disentanglement_lib ``DynamicVAE``:

      target(t) = C / floor(T / period) * floor(min(t, T) / period)
      y = alpha * KL + (1 - alpha) * y_prev          (y_prev starts at 0)
      e = y - target
      dP = K_p * (f(e) - f(e_prev))                  (e_prev starts at 0)
      dI = 0 if beta_prev < beta_min else K_i * e    (anti-windup)
      beta = max(beta_prev + dP + dI, beta_min)      (beta_prev starts at beta_init)

  ``proportional_on`` picks f. "undershoot", f(e) = min(e, 0): the P term acts only while the
  smoothed KL is below the target; this is the authors' code with the staircase target (commit
  8a0e8ab, 2022-09-17, to the last commit fd8a9af). "overshoot", f(e) = max(e, 0): the legacy rule of
  commit 9eb8bfd (e' = target - y, negative gains, f = min(e', 0)), rewritten with positive gains;
  that commit had a linear target, never the staircase. As in the code, beta_prev is the clipped
  beta, so the anti-windup branch fires only when beta_init < beta_min.
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar, Literal

from disent_core.schedules import ScheduledValue

ProportionalOn = Literal["overshoot", "undershoot"]


def logistic(x: float) -> float:
    """1 / (1 + exp(-x)) without overflow for large |x|.

    Args:
        x: any finite float.

    Returns:
        The logistic sigmoid of ``x``, in [0, 1].
    """
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    ex = math.exp(x)
    return ex / (1.0 + ex)


class KLController(ScheduledValue):
    """A value driven by the measured KL: ``update(kl, step)`` returns beta for that step. It is
    not a function of the step alone, so unlike a ``Schedule`` it cannot be called with a step.

    Subclasses implement ``rule(state, kl, step) -> (beta, new state)`` as a pure function of the
    state before the step, and set ``kind`` and the initial state.
    """

    kind: ClassVar[str]

    def __init__(self, initial_state: dict[str, float]) -> None:
        self.state = dict(initial_state)
        self.state_before = dict(initial_state)
        self.last_step: int | None = None
        self.last_value: float | None = None

    @abc.abstractmethod
    def rule(self, state: dict[str, float], kl: float, step: int) -> tuple[float, dict[str, float]]:
        """(beta, new state) of ``step`` from the state before it and the step's batch KL.

        Args:
            state: the controller's state before ``step`` (a copy the rule may modify).
            kl: the step's batch KL (nats), detached.
            step: the global step.

        Returns:
            (beta of the step, state after it).
        """

    def update(self, kl: float, step: int) -> float:
        """Advance the controller with the batch KL of ``step`` and return that step's beta.

        Calling it again with the same ``step`` recomputes that step from the state before it.

        Args:
            kl: the step's batch KL (nats), detached.
            step: the global step.

        Returns:
            beta of ``step`` (also kept as ``last_value``).
        """
        step = int(step)
        if step != self.last_step:
            self.state_before = self.state
        beta, self.state = self.rule(dict(self.state_before), float(kl), step)
        self.last_step, self.last_value = step, float(beta)
        return self.last_value

    def state_dict(self) -> dict:
        return {
            "kind": self.kind,
            "last_value": self.last_value,
            "last_step": self.last_step,
            "state": dict(self.state),
            "state_before": dict(self.state_before),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a ``state_dict`` of a controller of the same ``kind``.

        Args:
            state: a dict returned by ``state_dict``.

        Raises:
            ValueError: ``state`` is another kind's.
        """
        if state.get("kind") != self.kind:
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} schedule, this is {self.kind!r}")
        self.last_value = state["last_value"]
        self.last_step = state["last_step"]
        self.state = dict(state["state"])
        self.state_before = dict(state["state_before"])


class PIControl(KLController):
    """ControlVAE's non-linear PI controller (see the module docstring)."""

    kind = "control_vae_pi"

    def __init__(
        self,
        *,
        c: float,
        init_c: float,
        c_step: float,
        period: int,
        k_p: float,
        k_i: float,
        beta_min: float,
    ) -> None:
        super().__init__({"integral": 0.0, "output": 1.0})
        self.c, self.init_c, self.c_step, self.period = c, init_c, c_step, period
        self.k_p, self.k_i, self.beta_min = k_p, k_i, beta_min

    def target(self, step: int) -> float:
        """The KL set point C(t).

        Args:
            step: the global step t.

        Returns:
            min(c, init_c + c_step * (floor(t / period) + 1)), in nats.
        """
        return min(self.c, self.init_c + self.c_step * (step // self.period + 1))

    def rule(self, state: dict[str, float], kl: float, step: int) -> tuple[float, dict[str, float]]:
        """ControlVAE's PI update with anti-windup (see the module docstring).

        Args:
            state: ``{"integral", "output"}`` before ``step`` (the previous unclipped output P + I).
            kl: the step's batch KL (nats), detached.
            step: the global step.

        Returns:
            (beta = max(P + I, beta_min), the new ``{"integral", "output"}``).
        """
        error = self.target(step) - kl
        proportional = self.k_p * logistic(-error) + 1.0
        integral = state["integral"]
        if state["output"] >= self.beta_min:
            integral += self.k_i * error
        output = proportional + integral
        return max(output, self.beta_min), {"integral": integral, "output": output}


class IncrementalPIControl(KLController):
    """DynamicVAE's incremental PI controller on an EMA of the KL (see the module docstring)."""

    kind = "dynamic_vae_pi"

    def __init__(
        self,
        *,
        c: float,
        total_steps: int,
        period: int,
        alpha: float,
        k_p: float,
        k_i: float,
        beta_init: float,
        beta_min: float,
        proportional_on: ProportionalOn,
    ) -> None:
        if total_steps < period:
            raise ValueError(f"total_steps ({total_steps}) must be >= period ({period})")
        super().__init__({"kl_ema": 0.0, "error": 0.0, "beta": beta_init})
        self.c, self.total_steps, self.period, self.alpha = c, total_steps, period, alpha
        self.k_p, self.k_i, self.beta_min = k_p, k_i, beta_min
        self.proportional_on = proportional_on

    def target(self, step: int) -> float:
        """The staircase set point: C reached at total_steps in floor(T / period) equal steps.

        Args:
            step: the global step t.

        Returns:
            C / floor(T / period) * floor(min(t, T) / period), in nats.
        """
        return self.c / (self.total_steps // self.period) * (min(step, self.total_steps) // self.period)

    def f(self, error: float) -> float:
        """The proportional term's error filter: max(e, 0) for "overshoot", min(e, 0) for "undershoot".

        Args:
            error: e = y - target (nats).

        Returns:
            The filtered error.
        """
        return max(error, 0.0) if self.proportional_on == "overshoot" else min(error, 0.0)

    def rule(self, state: dict[str, float], kl: float, step: int) -> tuple[float, dict[str, float]]:
        """DynamicVAE's incremental PI update on the KL's EMA (see the module docstring).

        Args:
            state: ``{"kl_ema", "error", "beta"}`` before ``step`` (beta clipped).
            kl: the step's batch KL (nats), detached.
            step: the global step.

        Returns:
            (beta >= beta_min, the new ``{"kl_ema", "error", "beta"}``).
        """
        kl_ema = self.alpha * kl + (1 - self.alpha) * state["kl_ema"]
        error = kl_ema - self.target(step)
        d_p = self.k_p * (self.f(error) - self.f(state["error"]))
        d_i = 0.0 if state["beta"] < self.beta_min else self.k_i * error
        beta = max(state["beta"] + d_p + d_i, self.beta_min)
        return beta, {"kl_ema": kl_ema, "error": error, "beta": beta}
