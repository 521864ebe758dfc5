"""bench/fusion_kernels.py: grouped convolutions (HFTA) compute what vmap over stacked members does."""

from __future__ import annotations

import pytest
import torch
from fusion_kernels import Members, loss, max_relative_difference


@pytest.mark.parametrize("architecture", ["dlib", "erow"])
def test_grouped_convolutions_give_the_vmapped_members_outputs_and_gradients(architecture):
    members = Members(3, base_channels=4, architecture=architecture, device=torch.device("cpu"))
    x = torch.rand(3, 5, 1, 64, 64)
    assert max_relative_difference(members, x) < 1e-5
    gradients = []
    for forward in (members.vmapped, members.grouped):
        torch.manual_seed(2)
        value = loss(forward(x), x)
        gradients.append(torch.autograd.grad(value, list(members.params.values())))
    for name, a, b in zip(members.params, *gradients, strict=True):
        assert a.abs().max() > 0, name
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)


def test_each_member_of_the_grouped_form_is_its_own_network():
    members = Members(2, base_channels=4, architecture="dlib", device=torch.device("cpu"))
    x = torch.rand(2, 4, 1, 64, 64)
    torch.manual_seed(3)
    mean, _, _ = members.grouped(x)
    alone = {k.removeprefix("encoder."): v[1] for k, v in members.params.items() if k.startswith("encoder.")}
    want, _ = torch.func.functional_call(members.encoder, alone, (x[1],))
    torch.testing.assert_close(mean[1], want, rtol=1e-5, atol=1e-6)
