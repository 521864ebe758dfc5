"""N copies of one network as one: stacked parameters called with ``vmap(functional_call)``.

``FusedNetwork`` stacks the parameters of N structurally identical modules (``torch.func.
stack_module_state``: one leaf tensor of shape (N, *shape) per parameter) and calls them as one
module with ``torch.func.vmap`` over ``torch.func.functional_call`` of a parameterless template on
the ``meta`` device. Every argument carries the member dimension first. PyTorch's batching rules turn
a convolution of N weight sets on N inputs into one grouped convolution and a linear layer into one
batched matrix product, so N members cost one kernel launch per layer, not N.

The members' own modules stay usable: ``alias`` replaces each of their parameters by a view of its
slice of the stacked tensor, so a member ``Method`` always holds the live values (what the trainer
reports and evaluates) and costs no memory of its own; ``release`` gives a member independent copies
again. ``select`` keeps some members (a diverged member is dropped this way): new stacked tensors,
to which the kept members are re-aliased.

Optimiser state moves between the stacked form and each member's own single-model form with
``member_optimizer_state`` and ``stack_optimizer_states``: a state tensor of a parameter's stacked
shape is sliced (Adam's moments), anything else (Adam's step count, equal for every member because
all step together) is shared.

Deliberate limits: networks with buffers are refused (none of the fused networks has one; a mutable
buffer such as BatchNorm's running statistics cannot be updated through ``vmap``), and so is a
member whose network differs in any parameter's name or shape.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def _set_parameter(module: nn.Module, name: str, value: nn.Parameter) -> None:
    owner, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(owner) if owner else module, leaf, value)


class FusedNetwork:
    """The stacked parameters of N copies of one network, callable as one.

    Args:
        modules: the members' networks, identical in structure (names and shapes of parameters).

    Raises:
        ValueError: a network has buffers, or the members' networks differ in structure.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        first = modules[0]
        if any(True for _ in first.buffers()):
            raise ValueError(f"{type(first).__name__} has buffers; a fused network holds parameters only")
        shapes = {name: p.shape for name, p in first.named_parameters()}
        for i, module in enumerate(modules[1:], 1):
            other = {name: p.shape for name, p in module.named_parameters()}
            if other != shapes:
                raise ValueError(f"member {i}'s {type(module).__name__} differs in structure from member 0's")
        params, _ = torch.func.stack_module_state(list(modules))
        self.params: dict[str, torch.Tensor] = params
        self.template = copy.deepcopy(first).to("meta")
        self._vmapped = torch.func.vmap(self._member_forward)

    def _member_forward(self, params: dict[str, torch.Tensor], *args: Any) -> Any:
        return torch.func.functional_call(self.template, params, args)

    def __call__(self, *args: Any) -> Any:
        """Every member's network on its own inputs.

        Args:
            args: the network's arguments, each with the member dimension first, (N, ...).

        Returns:
            The network's outputs, each with the member dimension first.
        """
        return self._vmapped(self.params, *args)

    def alias(self, modules: Sequence[nn.Module]) -> None:
        """Make each module's parameters views of its slice of the stacked tensors.

        Args:
            modules: N modules of this network's structure, in member order.
        """
        for i, module in enumerate(modules):
            for name, stacked in self.params.items():
                _set_parameter(module, name, nn.Parameter(stacked.detach()[i]))

    @staticmethod
    def release(module: nn.Module) -> None:
        """Give ``module`` its own copies of its (aliased) parameters, detached from the stack.

        Args:
            module: a module that ``alias`` made a view of the stack.
        """
        for name, p in list(module.named_parameters()):
            _set_parameter(module, name, nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad))

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep`` (new stacked tensors; re-alias afterwards).

        Args:
            keep: positions in the stack, in the new order.
        """
        index = torch.tensor(list(keep), dtype=torch.long, device=next(iter(self.params.values())).device)
        self.params = {
            name: p.detach().index_select(0, index).requires_grad_(p.requires_grad)
            for name, p in self.params.items()
        }


def _is_per_parameter(value: Any, shape: torch.Size) -> bool:
    return isinstance(value, torch.Tensor) and value.shape == shape


def member_optimizer_state(state: dict, position: int, shapes: Sequence[torch.Size]) -> dict:
    """One member's optimiser state, in the form its single-model optimiser saves.

    Args:
        state: ``state_dict()`` of an optimiser over stacked parameters.
        position: the member's position in the stack.
        shapes: the stacked shape (N, ...) of each parameter, in the optimiser's index order.

    Returns:
        A ``state_dict`` with the member's slice of every per-parameter tensor (cloned) and copies of
        the shared entries; the parameter groups are copied.
    """
    per_param = {
        index: {
            key: value[position].clone() if _is_per_parameter(value, shapes[index]) else copy.deepcopy(value)
            for key, value in entries.items()
        }
        for index, entries in state["state"].items()
    }
    return {"state": per_param, "param_groups": copy.deepcopy(state["param_groups"])}


def stack_optimizer_states(states: Sequence[dict], shapes: Sequence[torch.Size]) -> dict:
    """The optimiser state over stacked parameters from each member's single-model state.

    Args:
        states: the members' optimiser ``state_dict``s, in stack order (all at the same step).
        shapes: each parameter's shape in one member (without the member dimension).

    Returns:
        A ``state_dict`` whose per-parameter tensors are stacked along a new first dimension; the
        shared entries and the parameter groups are the first member's.

    Raises:
        ValueError: the members' states hold different parameters or entries.
    """
    first = states[0]
    stacked: dict[Any, dict[str, Any]] = {}
    for index, entries in first["state"].items():
        if any(index not in s["state"] or s["state"][index].keys() != entries.keys() for s in states):
            raise ValueError(f"the members' optimiser states differ in the entries of parameter {index}")
        stacked[index] = {
            key: torch.stack([s["state"][index][key] for s in states])
            if _is_per_parameter(value, shapes[index])
            else value
            for key, value in entries.items()
        }
    if any(s["state"].keys() != first["state"].keys() for s in states):
        raise ValueError("the members' optimiser states hold different parameters")
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}
