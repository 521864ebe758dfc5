"""FusedNetwork and the optimiser-state conversions: stacked members behave as separate ones."""

from __future__ import annotations

import torch
from torch import nn

from disent_core.population.fused import FusedNetwork, member_optimizer_state, stack_optimizer_states


def _nets(n: int = 3) -> list[nn.Module]:
    nets = []
    for seed in range(n):
        torch.manual_seed(seed)
        nets.append(nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2)))
    return nets


def test_the_fused_call_is_each_members_network():
    nets = _nets()
    fused = FusedNetwork(nets)
    x = torch.randn(3, 4, 5)
    out = fused(x)
    assert out.shape == (3, 4, 2)
    for i, net in enumerate(nets):
        torch.testing.assert_close(out[i], net(x[i]), rtol=1e-6, atol=1e-6)


def test_aliased_members_see_the_stack_and_released_ones_keep_their_values():
    nets = _nets()
    fused = FusedNetwork(nets)
    fused.alias(nets)
    with torch.no_grad():
        fused.params["0.weight"].add_(1.0)
    assert torch.equal(nets[1][0].weight, fused.params["0.weight"][1])
    FusedNetwork.release(nets[1])
    with torch.no_grad():
        fused.params["0.weight"].add_(1.0)
    assert torch.equal(nets[1][0].weight + 1.0, fused.params["0.weight"][1])
    assert torch.equal(nets[2][0].weight, fused.params["0.weight"][2])
    before = fused.params["2.bias"].detach().clone()
    fused.select([2, 0])
    assert torch.equal(fused.params["2.bias"], before[[2, 0]]) and fused.params["2.bias"].requires_grad


def test_one_adam_over_stacked_members_is_each_members_adam_and_its_state_separates():
    nets = _nets()
    own = [torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.5, 0.9)) for net in nets]
    fused = FusedNetwork(nets)
    stacked = torch.optim.Adam(fused.params.values(), lr=1e-2, betas=(0.5, 0.9))
    for step in range(3):
        grads = [[torch.randn(p.shape, generator=torch.Generator().manual_seed(10 * step + j))
                  for j, p in enumerate(net.parameters())] for net in nets]
        for net, opt, g in zip(nets, own, grads, strict=True):
            for p, gp in zip(net.parameters(), g, strict=True):
                p.grad = gp
            opt.step()
        for j, p in enumerate(fused.params.values()):
            p.grad = torch.stack([g[j] for g in grads])
        stacked.step()
    for i, net in enumerate(nets):
        for name, p in net.named_parameters():
            assert torch.equal(fused.params[name][i], p)  # elementwise: exactly equal
    shapes = [p.shape for p in fused.params.values()]
    separated = [member_optimizer_state(stacked.state_dict(), i, shapes) for i in range(3)]
    for got, opt in zip(separated, own, strict=True):
        want = opt.state_dict()
        assert got["param_groups"] == want["param_groups"]
        for index, entries in want["state"].items():
            assert all(torch.equal(got["state"][index][k], v) for k, v in entries.items())
    restacked = stack_optimizer_states(separated, [s[1:] for s in shapes])
    for index, entries in stacked.state_dict()["state"].items():
        assert all(torch.equal(restacked["state"][index][k], v) for k, v in entries.items())
