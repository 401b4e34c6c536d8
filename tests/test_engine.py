"""Engine tests: flags/config, schedules, parameter groups, checkpoints and resume, the training loop,
precision, logging, distributed helpers (single process) and the DeepSpeed config builder.

Everything runs on CPU with a tiny model, a toy objective and an in-memory dataset.
"""

from __future__ import annotations

import copy
import glob
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset

from snappix.engine import args as A
from snappix.engine import checkpoint as C
from snappix.engine import distributed as D
from snappix.engine import loop as L
from snappix.engine import optim as O
from snappix.engine import precision as P
from snappix.engine import schedules as S
from snappix.engine.deepspeed_utils import build_deepspeed_config
from snappix.engine.logging import MetricMeter, RunLogger

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------
# toy model, objective, data
# ---------------------------------------------------------------------------------------------------
class TinyViT(nn.Module):
    """ViT-shaped toy: parameter names as in the real models (patch_embed, pos_embed, tokens, blocks)."""

    def __init__(self, dim: int = 8, depth: int = 2, in_features: int = 3 * 2 * 4 * 4):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Linear(in_features, dim)
        self.pos_embed = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pos_embed = nn.Parameter(torch.randn(1, 4, dim) * 0.02)
        self.sensor = nn.Module()
        self.sensor.logits = nn.Parameter(torch.randn(1, 2, 4, 4))  # 4-D, excluded by name only
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim)) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, in_features)

    def no_weight_decay(self):
        return {"sensor.logits"}

    def forward(self, video, encoder_mask=None, decoder_mask=None):
        x = video.flatten(1)
        extra = self.decoder_pos_embed.mean() + self.sensor.logits.mean()  # every parameter gets a gradient
        h = self.patch_embed.proj(x) + self.pos_embed[:, 0] + self.cls_token[:, 0] + extra
        if encoder_mask is not None:
            h = h + self.mask_token[:, 0] * encoder_mask.float().mean(1, keepdim=True)
        for blk in self.blocks:
            h = h + torch.tanh(blk(h))
        return {"pred": self.head(self.norm(h)), "target": x}


def mse_objective(outputs, batch):
    loss = (outputs["pred"].float() - outputs["target"].float()).pow(2).mean()
    return loss, {"mse": loss.item()}


class ToyVideos(Dataset):
    """Deterministic clips ``(3, 2, 4, 4)`` with a tube-like mask; every 8th clip marked substituted."""

    def __init__(self, n: int = 32):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"video": torch.rand(3, 2, 4, 4, generator=g), "encoder_mask": torch.rand(4, generator=g) > 0.5,
                "index": i, "substituted": i % 8 == 0}


def make_run(tmp_path=None, opt="adamw", lr=1e-2):
    torch.manual_seed(0)
    model = TinyViT()
    optimizer = O.create_optimizer(model, lr=lr, weight_decay=0.05, opt=opt, opt_betas=(0.9, 0.95))
    return model, optimizer


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


def test_scaled_lr_snappix_recipe():
    # ViT-S: 64 videos x 4 GPUs x 8 accumulation = 2048 -> 1e-3 * 8 = 8e-3 (num_sample ignored, as SnapPix)
    assert O.scaled_lr(1e-3, 64, 4, 8, num_sample=4) == pytest.approx(8e-3)
    assert O.scaled_lr(1e-3, 64, 4, 8, num_sample=4, with_num_sample=True) == pytest.approx(32e-3)
    v = O.scaled_lrs(1e-3, 1e-5, 0.0, batch_size=32, world_size=4, acc_iters=16)
    assert v["lr"] == pytest.approx(8e-3) and v["min_lr"] == pytest.approx(8e-5) and v["total_batch"] == 2048


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


# ---------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------
def _train_a_bit(model, optimizer, scaler=None):
    loader = DataLoader(ToyVideos(8), batch_size=4)
    return L.train_one_epoch(model, mse_objective, loader, optimizer, "cpu", 0, np.full(2, 1e-2),
                             steps_per_epoch=2, precision="fp32", scaler=scaler)


def test_checkpoint_round_trip_weights_only_and_rng(tmp_path):
    model, optimizer = make_run()
    scaler = P.LossScaler("fp32", "cpu")
    _train_a_bit(model, optimizer, scaler)
    config = A.config_dict(A.parse_args(A.build_parser(), ["--lr", "1e-3"]))
    written = C.save_checkpoint(tmp_path, model, optimizer, scaler, epoch=4, global_step=10, config=config,
                                num_epochs=5, save_ckpt_freq=2, extra={"best_psnr": np.float64(21.5)})
    assert [os.path.basename(p) for p in written] == ["checkpoint-latest.pth", "checkpoint-4.pth"]
    # the RNG draws right after saving ...
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])

    state = torch.load(tmp_path / "checkpoint-latest.pth", weights_only=True)  # plain data only
    assert state["epoch"] == 4 and state["global_step"] == 10 and state["config"]["lr"] == 1e-3
    assert state["best_psnr"] == 21.5 and type(state["best_psnr"]) is float
    assert state["rng"][0]["torch"].dtype == torch.uint8
    torch.load(tmp_path / "checkpoint-4.pth", weights_only=True)

    # ... are repeated after resuming into fresh objects, whose state equals the saved one
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    model2, optimizer2 = make_run()
    with torch.no_grad():
        for p in model2.parameters():
            p.add_(1.0)
    scaler2 = P.LossScaler("fp32", "cpu")
    info = C.resume(model2, optimizer2, scaler2, output_dir=tmp_path)
    assert (info.start_epoch, info.global_step) == (5, 10)
    assert info.path.endswith("checkpoint-latest.pth")
    for (n, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), n
    s1, s2 = optimizer.state_dict(), optimizer2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for k in s1["state"]:
        assert torch.equal(s1["state"][k]["exp_avg"], s2["state"][k]["exp_avg"])
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1])
    assert got[2] == expected[2]


@pytest.mark.parametrize("failing", ["torch.save", "os.replace"])
def test_atomic_save_failure_keeps_previous_checkpoint(tmp_path, monkeypatch, failing):
    model, optimizer = make_run()
    C.save_checkpoint(tmp_path, model, optimizer, None, epoch=0, global_step=1)
    before = (tmp_path / "checkpoint-latest.pth").read_bytes()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    if failing == "torch.save":
        monkeypatch.setattr(torch, "save", disk_full)
    else:
        monkeypatch.setattr(os, "replace", disk_full)
    with torch.no_grad():
        model.head.weight.add_(1.0)
    with pytest.raises(C.CheckpointError, match=r"checkpoint-latest\.pth.*No space left.*previous file is unchanged"):
        C.save_checkpoint(tmp_path, model, optimizer, None, epoch=1, global_step=2)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint-latest.pth").read_bytes() == before
    assert C.load_checkpoint(tmp_path / "checkpoint-latest.pth")["epoch"] == 0
    assert not glob.glob(str(tmp_path / "*.tmp*"))


def test_auto_resume_falls_back_from_truncated_checkpoints(tmp_path, caplog):
    model, optimizer = make_run()
    for epoch in range(4):  # freq 2 -> checkpoint-1, checkpoint-3, latest = 3
        C.save_checkpoint(tmp_path, model, optimizer, None, epoch=epoch, global_step=10 * (epoch + 1),
                          save_ckpt_freq=2)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-1.pth", "checkpoint-3.pth", "checkpoint-latest.pth"]
    latest = tmp_path / "checkpoint-latest.pth"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # preempted mid-copy
    path, state = C.find_resume_checkpoint(tmp_path)
    assert path.endswith("checkpoint-3.pth") and state["epoch"] == 3
    assert "checkpoint-latest.pth" in caplog.text  # warned about the unreadable file
    (tmp_path / "checkpoint-3.pth").write_bytes(b"garbage")
    info = C.resume(TinyViT(), None, output_dir=tmp_path)
    assert info.path.endswith("checkpoint-1.pth") and info.start_epoch == 2 and info.global_step == 20
    # --no_auto_resume starts fresh; an explicit unreadable --resume is an error, not a silent fallback
    assert C.resume(TinyViT(), None, output_dir=tmp_path, auto_resume=False).start_epoch == 0
    with pytest.raises(C.CheckpointError, match="cannot read checkpoint"):
        C.resume(TinyViT(), None, output_dir=tmp_path, resume_path=str(latest))
    assert C.find_resume_checkpoint(tmp_path / "missing") is None


def test_checkpoint_names_and_foreign_checkpoint(tmp_path):
    assert C.checkpoint_names(18, 300, 20) == ["latest"]
    assert C.checkpoint_names(19, 300, 20) == ["latest", "19"]
    assert C.checkpoint_names(299, 300, 20, best=True) == ["latest", "299", "best"]
    import argparse
    torch.save({"model": {}, "args": argparse.Namespace(lr=1)}, tmp_path / "foreign.pth")
    with pytest.raises(C.CheckpointError, match="argparse.Namespace|trusted"):
        C.load_checkpoint(tmp_path / "foreign.pth")
    assert C.load_checkpoint(tmp_path / "foreign.pth", trusted=True)["args"].lr == 1


def test_load_state_dict_report(caplog):
    src = TinyViT().state_dict()
    src["module.extra.weight"] = torch.zeros(2)
    src["head.weight"] = torch.zeros(5, 5)
    del src["norm.bias"]
    model = TinyViT()
    report = C.load_state_dict_report(model, {"model": src})
    assert set(report.missing) == {"norm.bias", "head.weight"}
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == [("head.weight", (5, 5), (96, 8))]
    assert torch.equal(model.pos_embed, src["pos_embed"])
    assert "missing" in caplog.text and "unexpected" in caplog.text
    with pytest.raises(RuntimeError):
        C.load_state_dict_report(TinyViT(), src, strict=True)


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


# ---------------------------------------------------------------------------------------------------
# flags and config
# ---------------------------------------------------------------------------------------------------
def _parser():
    p = A.build_parser("test")
    A.add_bool_arg(p, "--normalize_target", "--normlize_target", default=True, help="per-patch target norm")
    return p


def test_config_yaml_defaults_flag_override_and_aliases(tmp_path):
    cfg = tmp_path / "exp.yaml"
    # "1e-3" is a *string* for YAML 1.1 (no dot): it must still become a float
    cfg.write_text("lr: 1e-3\nupdate_freq: 8\nopt_betas: [0.9, 0.95]\nnormlize_target: false\n"
                   "no_auto_resume: true\nepochs: 30\nweight_decay_end: null\nprecision: fp32\n")
    args = A.parse_args(_parser(), ["--config", str(cfg), "--epochs", "5"])
    assert args.lr == 1e-3 and isinstance(args.lr, float)
    assert args.acc_iters == 8 and args.opt_betas == [0.9, 0.95]
    assert args.normalize_target is False and args.auto_resume is False
    assert args.epochs == 5  # explicit flag wins
    assert args.precision == "fp32" and args.weight_decay_end is None
    # the parser is left untouched
    assert A.parse_args(_parser(), []).epochs == 300


def test_config_unknown_key_and_bad_value_errors(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1.0e-3\nmask_ratoi: 0.9\n")
    with pytest.raises(SystemExit):
        A.parse_args(_parser(), ["--config", str(bad)])
    err = capsys.readouterr().err
    assert "mask_ratoi" in err and str(bad) in err
    with pytest.raises(A.ConfigError, match="unknown key 'epoch'.*did you mean.*epochs"):
        (tmp_path / "typo.yaml").write_text("epoch: 3\n")
        A.load_config(str(tmp_path / "typo.yaml"), _parser())
    (tmp_path / "choice.yaml").write_text("precision: fp8\n")
    with pytest.raises(A.ConfigError, match="precision"):
        A.load_config(str(tmp_path / "choice.yaml"), _parser())
    (tmp_path / "list.yaml").write_text("- lr\n")
    with pytest.raises(A.ConfigError, match="mapping"):
        A.load_config(str(tmp_path / "list.yaml"), _parser())


def test_bool_flags_and_local_rank_spellings():
    p = _parser()
    assert A.parse_args(p, ["--normlize_target", "False"]).normalize_target is False  # SnapPix's type=bool trap
    assert A.parse_args(p, ["--normalize_target"]).normalize_target is True
    assert A.parse_args(p, ["--pin_mem", "no"]).pin_mem is False
    assert A.parse_args(p, ["--no_pin_mem"]).pin_mem is False
    assert A.parse_args(p, []).pin_mem is True
    assert A.parse_args(p, ["--enable_deepspeed"]).enable_deepspeed is True
    with pytest.raises(SystemExit):
        A.parse_args(p, ["--pin_mem", "Flase"])
    assert A.parse_args(p, ["--local-rank", "3"]).local_rank == 3
    assert A.parse_args(p, ["--local_rank=2"]).local_rank == 2
    assert A.parse_args(p, ["--update_freq", "4"]).acc_iters == 4
    with pytest.raises(SystemExit):  # no prefix abbreviations (SnapPix --cross_model -> --cross_model_path)
        A.parse_args(p, ["--warmup", "3"])


def test_save_config_round_trip(tmp_path):
    p = _parser()
    args = A.parse_args(p, ["--lr", "2e-3", "--opt_betas", "0.9", "0.95", "--output_dir", str(tmp_path),
                            "--no_auto_resume", "--clip_grad", "1", "--data_root", str(tmp_path)])
    path = A.save_config(args, str(tmp_path))
    assert path == str(tmp_path / "config.yaml")
    saved = yaml.safe_load(open(path))
    assert saved["lr"] == 2e-3 and saved["opt_betas"] == [0.9, 0.95] and saved["auto_resume"] is False
    again = A.parse_args(_parser(), ["--config", path])
    assert {k: v for k, v in vars(again).items() if k != "config"} == \
           {k: v for k, v in vars(args).items() if k != "config"}


def test_group_default_overrides():
    import argparse
    p = argparse.ArgumentParser()
    A.add_schedule_args(p, epochs=100, lr=1e-3)
    assert A.parse_args(p, []).epochs == 100
    with pytest.raises(ValueError, match="not in group"):
        A.add_data_args(argparse.ArgumentParser(), epochs=3)


@pytest.mark.parametrize("name", ["coded_vits_snappix", "coded_vitb_snappix", "coded_super_tiny_reconstruction",
                                  "videomae_super_tiny"])
def test_shipped_pretrain_configs_parse(name):
    """Every shipped config parses through run_pretraining.py's own parser (unknown keys would raise)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_pretraining", REPO / "run_pretraining.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    path = REPO / "configs" / "pretrain" / f"{name}.yaml"
    args = A.parse_args(entry.build_parser(), ["--config", str(path)])
    assert args.task in ("pretrain", "reconstruction")
    total = args.batch_size * args.acc_iters * {"coded_super_tiny_reconstruction": 2}.get(name, 4)
    assert O.scaled_lr(args.lr, args.batch_size, total // (args.batch_size * args.acc_iters), args.acc_iters) == \
        pytest.approx(1e-3 * total / 256)
    if name.startswith("coded_vit"):
        assert total == 2048 and args.warmup_epochs == 30 and args.epochs == 300 and args.opt_betas == [0.9, 0.95]


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_deepspeed_config_builder_matches_examples(stage):
    cfg = build_deepspeed_config(32, acc_iters=2, world_size=4, clip_grad=None, zero_stage=stage, precision="bf16",
                                 device="cpu")
    example = json.loads((REPO / "configs" / "deepspeed" / f"zero{stage}.json").read_text())
    example.pop("_comment")
    assert cfg == example
    assert cfg["train_batch_size"] == 256 and cfg["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    with pytest.raises(ValueError, match="fp16 is not supported on CPU"):
        build_deepspeed_config(32, precision="fp16", device="cpu", world_size=1)
    with pytest.raises(ValueError, match="zero_stage"):
        build_deepspeed_config(32, zero_stage=3, world_size=1)


# ---------------------------------------------------------------------------------------------------
# distributed helpers (single process) and logging
# ---------------------------------------------------------------------------------------------------
def test_single_process_collectives_are_guarded():
    assert not D.is_dist_avail_and_initialized()
    assert D.get_rank() == 0 and D.get_world_size() == 1 and D.is_main_process()
    D.barrier()
    assert D.all_reduce_mean(3.5) == 3.5
    t = torch.tensor([1.0, 2.0])
    assert D.all_reduce_sum(t) is t
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]
    assert D.seed_everything(7, rank=2) == 9
    info = D.init_distributed("cpu", -1, configure_logging=False)
    assert not info.distributed and info.world_size == 1 and info.device.type == "cpu"
    assert D.wrap_ddp(nn.Linear(2, 2), info).__class__ is nn.Linear


def test_setup_logging_rank_levels(capsys):
    import logging
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        D.setup_logging(rank=1)
        logging.getLogger("snappix.test").info("hidden on rank 1")
        logging.getLogger("snappix.test").warning("shown on rank 1")
        D.setup_logging(rank=0)
        logging.getLogger("snappix.test").info("shown on rank 0")
        out = capsys.readouterr().out
        assert "hidden" not in out and "[rank1] WARNING" in out and "[rank0] INFO" in out
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_rank_discovery_torchrun_and_slurm():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert D.discover_ranks(-1, env) == (3, 4, 1, "env")
    env = {"RANK": "0", "WORLD_SIZE": "2"}
    assert D.discover_ranks(1, env) == (0, 2, 1, "env")  # legacy launcher: --local-rank flag
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODELIST": "gpu[07-08,12],cpu1"}
    assert D.discover_ranks(-1, env) == (5, 8, 1, "slurm")
    assert env["MASTER_ADDR"] == "gpu07" and env["MASTER_PORT"] == "29500" and env["RANK"] == "5"
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}
    assert D.discover_ranks(-1, env)[3] == "single"
    assert D.first_slurm_host("node1,node2") == "node1"
    assert D.first_slurm_host("a[001-004]-ib") == "a001-ib"


def test_metric_meter_and_run_logger(tmp_path):
    m = MetricMeter(window=2)
    m.update(n=4, loss=1.0)
    m.update(n=1, loss=6.0, psnr=20.0)
    m.update(n=1, loss=2.0)
    assert m.averages()["loss"] == pytest.approx((4 + 6 + 2) / 6) and m.averages()["psnr"] == 20.0
    assert m.smoothed()["loss"] == pytest.approx(4.0)
    m.synchronize()  # no-op in one process
    with RunLogger(str(tmp_path), progress=False) as logger:
        logger.scalars({"loss": 0.5, "skip": None}, 0, "train")
        logger.log_epoch(0, train={"loss": torch.tensor(0.5), "substituted": 3}, val={"psnr": np.float32(20.5)},
                         stats={"n_parameters": 10})
        logger.log_epoch(1, train={"loss": float("nan")})
    lines = (tmp_path / "log.txt").read_text().splitlines()
    first = json.loads(lines[0])
    assert first == {"train_loss": 0.5, "train_substituted": 3, "val_psnr": 20.5, "n_parameters": 10, "epoch": 0}
    assert json.loads(lines[1])["train_loss"] == "nan"
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
    assert RunLogger(str(tmp_path / "off"), enabled=False).writer is None
    assert not (tmp_path / "off").exists()


def test_engine_import_is_light():
    code = "import sys, snappix.engine; assert 'deepspeed' not in sys.modules; " \
           "import snappix.engine.deepspeed_utils; assert 'deepspeed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------------------------------------------
# end to end: a toy entry point wired like run_pretraining.py (also runnable under torchrun:
#   torchrun --nproc_per_node 2 tests/test_engine.py --output_dir /tmp/x --device cpu --epochs 3)
# ---------------------------------------------------------------------------------------------------
def _toy_main(argv):
    """Parse -> distributed -> data -> optimiser/schedules -> resume -> epochs -> checkpoints; prints a JSON
    summary on rank 0. ``--stop_after N`` simulates a preemption after epoch N."""
    from torch.utils.data import DistributedSampler

    parser = A.build_parser("toy")
    parser.add_argument("--stop_after", type=int, default=-1)
    args = A.parse_args(parser, argv)
    info = D.init_distributed(args.device, args.local_rank)
    D.seed_everything(args.seed)
    A.save_config(args, args.output_dir)
    model = TinyViT().to(info.device)
    data = ToyVideos(32)
    sampler = DistributedSampler(data, info.world_size, info.rank, seed=args.seed) if info.distributed else None
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, shuffle=sampler is None,
                        num_workers=args.num_workers, drop_last=True)
    steps = len(loader) // args.acc_iters
    lrs = O.scaled_lrs(args.lr, args.min_lr, args.warmup_lr, args.batch_size, info.world_size, args.acc_iters,
                       args.num_sample, args.lr_scale_with_num_sample)
    lr_s, wd_s = S.build_schedules(lrs["lr"], lrs["min_lr"], lrs["warmup_lr"], args.weight_decay,
                                   args.weight_decay_end, args.epochs, steps, args.warmup_epochs, args.warmup_steps)
    optimizer = O.create_optimizer(model, lrs["lr"], args.weight_decay, args.opt, args.opt_eps, args.opt_betas,
                                   layer_decay=args.layer_decay)
    precision = P.resolve_precision(args.precision, info.device)
    if args.enable_deepspeed:
        from snappix.engine import deepspeed_utils as DSU
        cfg = DSU.build_deepspeed_config(args.batch_size, args.acc_iters, info.world_size, args.clip_grad,
                                         args.zero_stage, precision, info.device)
        model, optimizer = DSU.initialize_deepspeed(model, optimizer, cfg, info)
        scaler = DSU.DeepSpeedScaler(model)
        res = DSU.resume_deepspeed(model, args.output_dir, args.resume, args.auto_resume)
    else:
        model = D.wrap_ddp(model, info, args.find_unused_parameters)
        scaler = P.LossScaler(precision, info.device)
        res = C.resume(model, optimizer, scaler, args.output_dir, args.resume, args.auto_resume)
    losses = {}
    with RunLogger(args.output_dir, args.log_dir, progress=args.progress) as logger:
        for epoch in range(res.start_epoch, args.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            stats = L.train_one_epoch(model, mse_objective, loader, optimizer, info.device, epoch, lr_s, wd_s, steps,
                                      precision, args.acc_iters, args.clip_grad, logger, scaler=scaler,
                                      last_checkpoint=C.latest_checkpoint(args.output_dir))
            logger.log_epoch(epoch, train=stats)
            losses[epoch] = stats["loss"]
            if args.enable_deepspeed:
                DSU.save_deepspeed_checkpoint(model, args.output_dir, epoch, stats["global_step"],
                                              A.config_dict(args), args.epochs, args.save_ckpt_freq)
            else:
                C.save_checkpoint(args.output_dir, model, optimizer, scaler, epoch, stats["global_step"],
                                  A.config_dict(args), args.epochs, args.save_ckpt_freq)
            if epoch == args.stop_after:
                break
    weights = D.unwrap_model(model).head.weight.detach().float()
    summary = {"start_epoch": res.start_epoch, "losses": losses, "head_sum": weights.sum().item(),
               "next_rand": torch.rand(1).item(), "world_size": info.world_size}
    if D.is_main_process():
        print("SUMMARY " + json.dumps(summary), flush=True)
    D.cleanup()


def _run_toy(tmp_path, *flags):
    cmd = [sys.executable, __file__, "--device", "cpu", "--num_workers", "0", "--batch_size", "4", "--acc_iters", "2",
           "--epochs", "3", "--warmup_epochs", "1", "--lr", "1e-2", "--no_progress", *flags]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("SUMMARY "))
    return json.loads(line[len("SUMMARY "):])


def _check_preempted_run_matches(tmp_path, *flags):
    full = _run_toy(tmp_path, "--output_dir", "full", *flags)
    first = _run_toy(tmp_path, "--output_dir", "cut", "--stop_after", "1", *flags)
    second = _run_toy(tmp_path, "--output_dir", "cut", *flags)  # auto-resume
    assert first["start_epoch"] == 0 and second["start_epoch"] == 2
    assert first["losses"]["1"] == full["losses"]["1"]
    assert second["losses"]["2"] == full["losses"]["2"]     # bit-exact: data order, RNG, optimiser restored
    assert second["head_sum"] == full["head_sum"] and second["next_rand"] == full["next_rand"]
    log = [json.loads(x) for x in (tmp_path / "cut" / "log.txt").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1, 2]
    parser = A.build_parser()
    parser.add_argument("--stop_after", type=int, default=-1)
    again = A.parse_args(parser, ["--config", str(tmp_path / "cut" / "config.yaml")])
    # config.yaml keeps the run's first launch; the resumed launch appended a note naming what changed
    assert again.acc_iters == 2 and again.lr == 1e-2 and again.stop_after == 1
    assert "stop_after: 1 -> -1" in (tmp_path / "cut" / "config.yaml").read_text().splitlines()[-1]


def test_preempted_run_resumes_bit_exactly(tmp_path):
    _check_preempted_run_matches(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [0, 2])
def test_deepspeed_preempted_run_resumes_bit_exactly(tmp_path, stage):
    pytest.importorskip("deepspeed")
    _check_preempted_run_matches(tmp_path, "--enable_deepspeed", "--zero_stage", str(stage), "--clip_grad", "1.0")


if __name__ == "__main__":
    _toy_main(sys.argv[1:])
