"""AdamW on the CPU uses PyTorch's fused kernel, which gives the same update as the default one."""

import copy

import torch
from torch import nn

from snappix.engine import optim as O


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(32, 4))


def test_cpu_adamw_is_fused_and_matches_the_default_update():
    model = _model()
    ref = copy.deepcopy(model)
    opt = O.create_optimizer(model, lr=1e-2, weight_decay=0.05, opt_betas=(0.9, 0.95))
    assert opt.defaults["fused"] is True
    ref_opt = torch.optim.AdamW(O.param_groups(ref, 0.05), lr=1e-2, betas=(0.9, 0.95), foreach=True)
    for g in ref_opt.param_groups:
        g["lr"] = 1e-2 * g["lr_scale"]
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(1))
    for _ in range(5):
        for m, o in ((model, opt), (ref, ref_opt)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(model.parameters()), next(_model().parameters()))  # it did train


def test_fused_only_for_floating_cpu_parameters():
    assert O.use_fused_adamw([{"params": [torch.zeros(3, requires_grad=True)]}])
    assert not O.use_fused_adamw([{"params": []}])
    meta = torch.zeros(3, device="meta", requires_grad=True)
    assert not O.use_fused_adamw([{"params": [meta]}])
    sgd = O.create_optimizer(_model(), lr=0.1, opt="sgd")
    assert isinstance(sgd, torch.optim.SGD)
