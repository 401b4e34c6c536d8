"""Engine: the training loop (``snappix.engine.loop``) and precision (``snappix.engine.precision``):
gradient accumulation, epoch statistics, evaluation means, non-finite losses, bf16 autocast on the CPU
and the fp16 loss scaler."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from engine_toys import ToyVideos, make_run, mse_objective
from snappix.engine import loop as L
from snappix.engine import optim as O
from snappix.engine import precision as P


# ---------------------------------------------------------------------------------------------------
# training loop
# ---------------------------------------------------------------------------------------------------
def test_acc_iters_2_equals_one_step_with_double_batch():
    data = ToyVideos(8)
    model_a, opt_a = make_run(opt="sgd", lr=0.1)
    model_b = copy.deepcopy(model_a)
    opt_b = O.create_optimizer(model_b, lr=0.1, weight_decay=0.05, opt="sgd")
    lr = np.full(1, 0.1)
    stats_a = L.train_one_epoch(model_a, mse_objective, DataLoader(data, batch_size=4), opt_a, "cpu", 0, lr,
                                steps_per_epoch=1, acc_iters=2, precision="fp32")
    stats_b = L.train_one_epoch(model_b, mse_objective, DataLoader(data, batch_size=8), opt_b, "cpu", 0, lr,
                                steps_per_epoch=1, acc_iters=1, precision="fp32")
    assert stats_a["steps"] == stats_b["steps"] == 1
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert stats_a["loss"] == pytest.approx(stats_b["loss"], rel=1e-6)
    assert stats_a["grad_norm"] == pytest.approx(stats_b["grad_norm"], rel=1e-4)
    # and the update is real: parameters differ from a model that was not trained
    ref, _ = make_run(opt="sgd", lr=0.1)
    assert not torch.equal(ref.head.weight, model_a.head.weight)


def test_train_epoch_stats_substituted_and_step_count():
    model, optimizer = make_run()
    loader = DataLoader(ToyVideos(32), batch_size=4)  # 8 micro-batches
    stats = L.train_one_epoch(model, mse_objective, loader, optimizer, "cpu", 2, np.full(9, 1e-3),
                              acc_iters=2, precision="fp32", clip_grad=0.5)
    assert stats["steps"] == 4 and stats["global_step"] == 12
    assert stats["substituted"] == 4  # items 0, 8, 16, 24
    assert {"loss", "mse", "grad_norm", "lr", "weight_decay", "clips_per_s", "data_time_frac"} <= set(stats)
    assert stats["loss"] == pytest.approx(stats["mse"])
    assert 0 <= stats["data_time_frac"] <= 1 and stats["clips_per_s"] > 0
    ev = L.evaluate(model, mse_objective, DataLoader(ToyVideos(10), batch_size=4), "cpu", precision="fp32")
    # batch-size weighted mean over 4 + 4 + 2 clips equals the mean over all clips
    model.eval()
    with torch.no_grad():
        full = next(iter(DataLoader(ToyVideos(10), batch_size=10)))
        per_batch = [mse_objective(model(b["video"], encoder_mask=b["encoder_mask"]), b)[0].item()
                     for b in DataLoader(ToyVideos(10), batch_size=4)]
    assert ev["loss"] == pytest.approx((4 * per_batch[0] + 4 * per_batch[1] + 2 * per_batch[2]) / 10, rel=1e-6)
    assert ev["substituted"] == 2 and full["video"].shape[0] == 10


def test_non_finite_loss_raises_with_step_lr_and_checkpoint(tmp_path):
    model, optimizer = make_run()
    calls = {"n": 0}

    def exploding(outputs, batch):
        calls["n"] += 1
        loss, m = mse_objective(outputs, batch)
        return (loss * float("nan") if calls["n"] == 5 else loss), m

    last = str(tmp_path / "checkpoint-latest.pth")
    lr = np.linspace(1e-3, 2e-3, 8)
    with pytest.raises(P.NonFiniteLossError) as err:
        L.train_one_epoch(model, exploding, DataLoader(ToyVideos(32), batch_size=4), optimizer, "cpu", 0, lr,
                          acc_iters=2, precision="fp32", last_checkpoint=last)
    msg = str(err.value)
    assert "nan" in msg and "step 2" in msg and f"lr {lr[2]:.4g}" in msg and last in msg


def test_bf16_autocast_on_cpu_and_fp16_refused():
    assert P.resolve_precision("bf16", "cpu") == "bf16"
    with P.autocast("cpu", "bf16"):
        y = nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
    with P.autocast("cpu", "fp32"):
        assert nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        P.resolve_precision("fp16", "cpu")
    model, optimizer = make_run()
    stats = L.train_one_epoch(model, mse_objective, DataLoader(ToyVideos(8), batch_size=4), optimizer, "cpu", 0,
                              np.full(2, 1e-3), precision="bf16")
    assert math.isfinite(stats["loss"]) and stats["loss_scale"] == 1.0


def test_loss_scaler_fp16_skips_inf_steps_and_round_trips():
    # GradScaler logic on CPU (training refuses fp16 on CPU, the scaler class itself is device-agnostic)
    lin = nn.Linear(3, 1)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    scaler = P.LossScaler("fp16", "cpu")
    assert scaler.enabled and scaler.loss_scale == 2.0 ** 16
    before = lin.weight.detach().clone()
    loss = lin(torch.ones(1, 3)).sum() * float("inf")
    norm = scaler(loss, opt, list(lin.parameters()), clip_grad=1.0)
    assert not math.isfinite(norm) and torch.equal(lin.weight, before)  # step skipped
    assert scaler.loss_scale == 2.0 ** 15                               # and the scale backed off
    opt.zero_grad()
    norm = scaler(lin(torch.ones(1, 3)).sum(), opt, list(lin.parameters()), clip_grad=0.5)
    assert norm == pytest.approx(2.0) and not torch.equal(lin.weight, before)  # |(1,1,1,1)| = 2, clipped to .5
    fresh = P.LossScaler("fp16", "cpu")
    fresh.load_state_dict(scaler.state_dict())
    assert fresh.loss_scale == scaler.loss_scale
    assert P.LossScaler("bf16", "cpu").state_dict() == {}
