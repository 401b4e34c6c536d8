"""Engine: lr / weight-decay schedules (cosine, multi-step), the batch-size lr scaling rule, optimiser
parameter groups (weight-decay exemptions, layer-wise lr decay, model-declared lr scales) and how the
training loop applies them (``snappix.engine.schedules``, ``snappix.engine.optim``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from torch.utils.data import DataLoader

from engine_toys import TinyViT, ToyVideos, mse_objective
from snappix.engine import loop as L
from snappix.engine import optim as O
from snappix.engine import schedules as S


# ---------------------------------------------------------------------------------------------------
# schedules and lr scaling
# ---------------------------------------------------------------------------------------------------
def test_cosine_schedule_exact_values():
    s = S.cosine_schedule(1e-3, 1e-5, epochs=10, steps_per_epoch=5, warmup_epochs=2, start_warmup_value=1e-6)
    assert s.shape == (50,)
    assert s[0] == pytest.approx(1e-6, abs=1e-15)                       # warmup starts at --warmup_lr
    assert s[9] == pytest.approx(1e-6 + (1e-3 - 1e-6) * 9 / 10, rel=1e-12)  # last warmup step
    assert s[10] == pytest.approx(1e-3, rel=1e-12)                       # warmup end = peak
    assert s[-1] == pytest.approx(1e-5, rel=1e-12)                       # last step = final
    n = 40  # decay steps; halfway point of the cosine at j = (n - 1) / 2 lies between two steps
    assert s[10 + 13] == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 13 / (n - 1))))
    assert np.all(np.diff(s[:11]) > 0) and np.all(np.diff(s[10:]) <= 0)


def test_cosine_schedule_warmup_steps_constant_and_errors():
    s = S.cosine_schedule(2.0, 0.0, epochs=2, steps_per_epoch=10, warmup_epochs=1, warmup_steps=4)
    assert s[4] == 2.0 and s[3] == pytest.approx(1.5) and s[-1] == 0.0  # warmup_steps overrides epochs
    wd = S.cosine_schedule(0.05, None, epochs=3, steps_per_epoch=7)
    assert wd.shape == (21,) and np.all(wd == 0.05)
    with pytest.raises(ValueError, match="warmup"):
        S.cosine_schedule(1.0, 0.0, epochs=1, steps_per_epoch=5, warmup_epochs=1)
    lr, wd = S.build_schedules(8e-3, 8e-5, 0.0, 0.05, None, epochs=300, steps_per_epoch=10, warmup_epochs=30)
    assert lr[0] == 0.0 and lr[300] == pytest.approx(8e-3) and lr[-1] == pytest.approx(8e-5)
    assert np.all(wd == 0.05)



def test_multistep_schedule_exact_values():
    # warmup over epoch 0 (3 steps) from 0.1, then base 1.0, x0.5 at step 6 and again at step 9
    s = S.multistep_schedule(1.0, 0.5, [6, 9], epochs=4, steps_per_epoch=3, warmup_epochs=1, start_warmup_value=0.1)
    assert s.shape == (12,) and s.dtype == np.float64
    assert s[:3] == pytest.approx([0.1, 0.1 + 0.9 / 3, 0.1 + 0.9 * 2 / 3], rel=1e-15)
    assert s[3:].tolist() == [1.0] * 3 + [0.5] * 3 + [0.25] * 3
    # a milestone inside the warmup applies from the end of the warmup on; milestones past the run are ignored
    s = S.multistep_schedule(2.0, 0.1, [1, 100], epochs=2, steps_per_epoch=4, warmup_steps=2)
    assert s.tolist() == [0.0, 1.0] + [2.0 * 0.1] * 6
    assert S.multistep_schedule(3.0, 0.1, [], epochs=1, steps_per_epoch=4).tolist() == [3.0] * 4


def test_multistep_milestones_in_epochs_or_steps():
    assert S.milestone_steps(3, decay_epochs=[2, 3]) == [6, 9]
    assert S.milestone_steps(4, decay_epochs=[0.5, 1.25]) == [2, 5]  # fractional epochs, rounded to steps
    assert S.milestone_steps(3, decay_steps=[4, 7]) == [4, 7]
    lr, wd = S.build_schedules(0.1, 1e-6, 0.0, 0.05, None, epochs=3, steps_per_epoch=4, lr_sched="multistep",
                               decay_rate=0.2, decay_epochs=[1, 2])
    # min_lr plays no part; approx: NumPy's power may differ by an ulp between CPUs (AVX-512 kernels)
    assert lr.tolist() == pytest.approx([0.1] * 4 + [0.1 * 0.2] * 4 + [0.1 * 0.2 ** 2] * 4, rel=1e-12)
    assert lr.tolist() == pytest.approx([0.1] * 4 + [0.02] * 4 + [0.004] * 4, rel=1e-12)
    assert np.all(wd == 0.05)
    lr, _ = S.build_schedules(0.1, 0.0, 0.0, 0.05, None, epochs=3, steps_per_epoch=4, lr_sched="multistep",
                              decay_rate=0.2, decay_steps=[5, 10])
    assert lr.tolist() == pytest.approx([0.1] * 5 + [0.1 * 0.2] * 5 + [0.1 * 0.2 ** 2] * 2, rel=1e-12)


@pytest.mark.parametrize("epochs_, steps_, message", [
    ([2, 1], None, "increasing"),
    ([1, 1], None, "increasing"),
    (None, [-1, 3], ">= 0"),
    ([1], [4], "exactly one"),
    (None, None, "exactly one"),
])
def test_multistep_bad_milestones(epochs_, steps_, message):
    with pytest.raises(ValueError, match=message):
        S.milestone_steps(4, epochs_, steps_)
    with pytest.raises(ValueError, match=message):
        S.build_schedules(0.1, 0.0, 0.0, 0.05, None, epochs=3, steps_per_epoch=4, lr_sched="multistep",
                          decay_epochs=epochs_, decay_steps=steps_)


def test_unknown_lr_schedule_and_scaling_rule():
    with pytest.raises(ValueError, match="unknown lr schedule 'step'"):
        S.build_schedules(0.1, 0.0, 0.0, 0.05, None, epochs=3, steps_per_epoch=4, lr_sched="step")
    with pytest.raises(ValueError, match="unknown lr scaling rule 'sqrt'"):
        O.scaled_lrs(0.1, 0.0, 0.0, batch_size=16, rule="sqrt")

def test_scaled_lr_snappix_recipe():
    # ViT-S: 64 videos x 4 GPUs x 8 accumulation = 2048 -> 1e-3 * 8 = 8e-3 (num_sample ignored, as SnapPix)
    assert O.scaled_lr(1e-3, 64, 4, 8, num_sample=4) == pytest.approx(8e-3)
    assert O.scaled_lr(1e-3, 64, 4, 8, num_sample=4, with_num_sample=True) == pytest.approx(32e-3)
    v = O.scaled_lrs(1e-3, 1e-5, 0.0, batch_size=32, world_size=4, acc_iters=16)
    assert v["lr"] == pytest.approx(8e-3) and v["min_lr"] == pytest.approx(8e-5) and v["total_batch"] == 2048


def test_lr_scale_none_keeps_the_absolute_lr():
    v = O.scaled_lrs(0.1, 1e-4, 1e-3, batch_size=16, world_size=4, acc_iters=2, rule="none")
    assert v == {"lr": 0.1, "min_lr": 1e-4, "warmup_lr": 1e-3, "total_batch": 128}


# ---------------------------------------------------------------------------------------------------
# parameter groups
# ---------------------------------------------------------------------------------------------------
def test_param_groups_weight_decay_exemptions():
    model = TinyViT()
    groups = {g["name"]: g for g in O.param_groups(model, weight_decay=0.05)}
    assert set(groups) == {"decay", "no_decay"}
    no_decay = set(groups["no_decay"]["param_names"])
    decay = set(groups["decay"]["param_names"])
    assert no_decay == {"pos_embed", "cls_token", "mask_token", "decoder_pos_embed", "sensor.logits",
                        "patch_embed.proj.bias", "blocks.0.0.weight", "blocks.0.0.bias", "blocks.0.1.bias",
                        "blocks.1.0.weight", "blocks.1.0.bias", "blocks.1.1.bias", "norm.weight", "norm.bias",
                        "head.bias"}
    assert decay == {"patch_embed.proj.weight", "blocks.0.1.weight", "blocks.1.1.weight", "head.weight"}
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["decay"]["weight_decay"] == 0.05
    # frozen parameters are left out; glob patterns from no_weight_decay work
    model.head.weight.requires_grad_(False)
    names = {n for g in O.param_groups(model, 0.05, skip={"blocks.*"}) for n in g["param_names"]}
    assert "head.weight" not in names
    g2 = {g["name"]: set(g["param_names"]) for g in O.param_groups(model, 0.05, skip={"blocks.*"})}
    assert "blocks.0.1.weight" in g2["no_decay"]


def test_model_declared_lr_scales_get_their_own_group():
    model = TinyViT(depth=2)
    model.lr_scales = lambda: {"sensor.logits": 365.8}
    groups = {g["name"]: g for g in O.param_groups(model, 0.05)}
    scaled = groups["no_decay_lr_x365.8"]
    assert scaled["param_names"] == ["sensor.logits"] and scaled["lr_scale"] == pytest.approx(365.8)
    assert "sensor.logits" not in groups["no_decay"]["param_names"]
    ld = {g["name"]: g for g in O.param_groups(model, 0.05, layer_decay=0.5)}
    assert ld["layer_3_no_decay_lr_x365.8"]["lr_scale"] == pytest.approx(365.8)


def test_layer_decay_groups_and_scales():
    model = TinyViT(depth=2)
    groups = {g["name"]: g for g in O.param_groups(model, 0.05, layer_decay=0.5)}
    # L = 2: patch_embed/pos_embed/tokens -> 0, blocks.k -> k + 1, the rest -> 3; scale = 0.5 ** (3 - id)
    assert groups["layer_0_decay"]["param_names"] == ["patch_embed.proj.weight"]
    assert set(groups["layer_0_no_decay"]["param_names"]) == {"patch_embed.proj.bias", "pos_embed", "cls_token",
                                                              "mask_token"}
    assert groups["layer_0_decay"]["lr_scale"] == pytest.approx(0.125)
    assert groups["layer_1_decay"]["param_names"] == ["blocks.0.1.weight"]
    assert groups["layer_1_no_decay"]["lr_scale"] == pytest.approx(0.25)
    assert groups["layer_2_decay"]["lr_scale"] == pytest.approx(0.5)
    assert set(groups["layer_3_decay"]["param_names"]) == {"head.weight"}
    assert groups["layer_3_no_decay"]["lr_scale"] == 1.0
    assert "decoder_pos_embed" in groups["layer_3_no_decay"]["param_names"]
    assert O.vit_layer_id("encoder.blocks.11.attn.qkv.weight", 12) == 12
    assert O.vit_layer_id("module.encoder.patch_embed.proj.weight", 12) == 0
    assert O.vit_layer_id("fc_norm.weight", 12) == 13


def test_loop_sets_lr_times_lr_scale_and_wd_per_group():
    model = TinyViT()
    optimizer = O.create_optimizer(model, lr=1.0, weight_decay=0.05, layer_decay=0.5)
    loader = DataLoader(ToyVideos(8), batch_size=4)
    lr_s = np.array([0.1, 0.2, 0.3, 0.4])
    wd_s = np.array([0.01, 0.02, 0.03, 0.04])
    L.train_one_epoch(model, mse_objective, loader, optimizer, "cpu", epoch=1, lr_schedule=lr_s,
                      wd_schedule=wd_s, steps_per_epoch=2, precision="fp32")
    for g in optimizer.param_groups:  # last step of epoch 1 is global step 3
        assert g["lr"] == pytest.approx(0.4 * g["lr_scale"])
        assert g["weight_decay"] == pytest.approx(0.04 if g["name"].endswith("_decay") and "no_decay" not in g["name"]
                                                  else 0.0)
