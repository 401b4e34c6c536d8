"""Classifiers (coded ViT, video ViT, C3D, SVC2D) and the pretrained-weight converter (SnapPix §5)."""

from __future__ import annotations

import argparse
import functools
import math
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import timm
import torch
import torch.nn.functional as F

import snappix.models  # noqa: F401  (registers the models)
from snappix.engine.checkpoint import CheckpointError
from snappix.engine.optim import param_groups
from snappix.models.classifiers import CodedViTClassifier, VideoViTClassifier, count_parameters
from snappix.methods.pretrained import load_pretrained
from snappix.models.convert import convert_state_dict
from snappix.models.pos_embed import interpolate_pos_embed
from snappix.models.registry import SNAPPIX_MODEL_ALIASES, resolve_model_name
from snappix.models.svc2d import PatternConv

REPO = Path(__file__).resolve().parents[1]

CODED = [f"coded_vit_{s}_patch8_112" for s in ("super_tiny", "small", "base")]
VIDEO = [f"video_vit_{s}_{g}" for s in ("super_tiny", "small", "base") for g in ("patch8_112", "patch16_224")]
CNNS = ["c3d", "svc2d"]
ALL = CODED + VIDEO + CNNS

#: name -> (ours exactly, SnapPix's reported count with 400 classes)
PARAMS = {
    "coded_vit_small_patch8_112": (21_469_712, 21.47e6),  # SnapPix log: 21469712 (incl. 1024 pattern logits)
    "coded_vit_base_patch8_112": (85_405_328, 85.41e6),
    "video_vit_super_tiny_patch8_112": (1_653_520, 1.65e6),
    "c3d": (62_852_752, 62.86e6),  # SnapPix 62860944 = ours + its unused bn6 (8192)
    "svc2d": (44_460_944, 44.47e6),  # SnapPix log: 44469136 = ours + unused bn6 (8192)
}


def create(name, **kwargs):
    if name.startswith("coded_vit"):
        kwargs.setdefault("coded_type", "naive")
    return timm.create_model(name, **kwargs)


def sized_model(name):
    """Full-size model with 400 classes; the ViT block init (trunc-normal of up to 85 M values, seconds on a
    CPU) is skipped: it changes no shape, and the blocks keep PyTorch's default Linear init."""
    torch.manual_seed(0)
    with mock.patch("snappix.models.vit.init_weights", lambda module, mode="xavier": None):
        return create(name, num_classes=400)


@functools.lru_cache(maxsize=None)
def full_model(name):
    """:func:`sized_model` in eval mode, built once per session (do not mutate)."""
    return sized_model(name).eval()


# ------------------------------------------------------------------------------------------- registry
def test_names_registered_and_timm_names_untouched():
    for name in ALL:
        assert timm.list_models(name) == [name]
    assert not timm.list_models("vit_super_tiny*")  # SnapPix's colliding names are not registered ...
    assert resolve_model_name("vit_super_tiny_patch8_112") == "video_vit_super_tiny_patch8_112"  # ... but aliased
    assert resolve_model_name("vit_small_patch16_224") == "video_vit_small_patch16_224"
    assert resolve_model_name("coded_vit_small_patch8_112") == "coded_vit_small_patch8_112"
    assert all(v in timm.list_models("video_vit_*") for v in SNAPPIX_MODEL_ALIASES.values())
    code = ("import snappix.models, timm\n"
            "m = timm.create_model('vit_small_patch16_224')\n"
            "from timm.models.vision_transformer import VisionTransformer\n"
            "assert type(m) is VisionTransformer, type(m)\n"
            "assert m.patch_embed.proj.in_channels == 3 and m.num_classes == 1000\n")
    res = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], cwd=REPO, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "Overwriting" not in res.stderr + res.stdout


def test_pretrained_flag_refused():
    with pytest.raises(ValueError, match="load_pretrained"):
        timm.create_model("c3d", pretrained=True)


# ------------------------------------------------------------------------------------------- sizes
@pytest.mark.parametrize("name", list(PARAMS))
def test_param_counts_match_snappix(name):
    ours, snappix_reported = PARAMS[name]
    model = sized_model(name)
    n = count_parameters(model)
    assert n == ours
    assert abs(n - snappix_reported) / snappix_reported < 0.005
    if name.startswith("coded"):  # the frozen pattern counts, as in SnapPix's log; it is not trainable here
        assert count_parameters(model, trainable_only=True) == n - 1024
    model.eval()
    if name == "svc2d":  # the TPAMI sensor reads its annealing counter (.item(), impossible on meta): run it for real
        coded = model.sensor(torch.rand(1, 1, 16, 112, 112))
        assert coded.shape == (1, 1, 1, 112, 112)
    model = model.to("meta")  # full-size 16 x 112 x 112 forward, shapes only (no compute)
    if name == "svc2d":
        x = coded[:, :, 0].to("meta")
        for stage in model.blocks:
            x = stage(x)
        assert x.shape == (1, 512, 4, 4) and model.forward_head(x.flatten(1)).shape == (1, 400)
    else:
        assert model(torch.empty(1, 1, 16, 112, 112, device="meta")).shape == (1, 400)


def small_kwargs(name):
    """Reduced geometry / depth: what the shapes test needs, fast on a CPU."""
    if name.startswith("coded"):
        return dict(img_size=32, depth=2)
    if name.startswith("video_vit"):
        return dict(img_size=32, num_frames=4, depth=2)
    return dict(img_size=16)


@pytest.mark.parametrize("name", ALL)
def test_output_shapes(name):
    torch.manual_seed(0)
    model = create(name, num_classes=7, **small_kwargs(name)).eval()
    t, size = model.num_frames, small_kwargs(name)["img_size"]
    video = torch.rand(2, 1, t, size, size)
    with torch.no_grad():
        logits = model(video)
    assert logits.shape == (2, 7) and logits.dtype == torch.float32 and bool(torch.isfinite(logits).all())
    assert (model.sensor is None) == (name.startswith("video_vit") or name == "c3d")
    with pytest.raises(ValueError, match="expects a clip"):
        model(torch.rand(2, 1, t + 2, size, size))


@pytest.mark.parametrize("name", CNNS)
def test_cnn_small_forward_backward(name):  # the full-size (112 px) forward runs on meta in the count test
    size = small_kwargs(name)["img_size"]
    small = create(name, num_classes=5, img_size=size)  # training mode: dropout, BatchNorm batch statistics
    logits = small(torch.rand(2, 1, 16, size, size))
    F.cross_entropy(logits, torch.tensor([0, 3])).backward()
    first = small.blocks[0][0]
    assert first.weight.grad is not None and float(first.weight.grad.abs().sum()) > 0
    if name == "svc2d":
        assert small.sensor.logits.grad is not None  # the TPAMI pattern trains (STE)


@pytest.mark.parametrize("name", ["coded_vit_super_tiny_patch8_112", "svc2d"])
def test_bf16_autocast_forward_backward(name):
    torch.manual_seed(0)
    kw = small_kwargs(name)
    model = create(name, num_classes=3, **kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(2, 1, 16, kw["img_size"], kw["img_size"]))
    assert logits.shape == (2, 3) and bool(torch.isfinite(logits.float()).all())
    logits.float().sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if p.requires_grad)


def test_coded_vit_full_size_and_optimiser_hooks():
    model = full_model("coded_vit_small_patch8_112")
    with torch.no_grad():
        assert model(torch.rand(1, 1, 16, 112, 112)).shape == (1, 400)
    assert model.num_patches == 196 and model.grid == (1, 14, 14)
    assert model.get_num_layers() == model.num_layers == 12
    assert "sensor.logits" in model.no_weight_decay() and not model.sensor.logits.requires_grad
    drop = [b.drop_path.drop_prob if hasattr(b.drop_path, "drop_prob") else 0.0 for b in model.blocks]
    assert drop[0] == 0.0 and drop[-1] == pytest.approx(0.1) and drop[5] == pytest.approx(0.05 * 10 / 11)
    assert float(model.head.weight.detach().std()) == pytest.approx(0.02 * 0.001, rel=0.1)
    assert float(model.head.bias.detach().abs().max()) == 0.0
    assert type(model.norm).__name__ == "Identity"  # mean pooling + fc_norm, as VideoMAE / SnapPix
    groups = {g["name"]: g for g in param_groups(model, 0.05, layer_decay=0.65)}
    assert "blocks.11.mlp.fc2.weight" in groups["layer_12_decay"]["param_names"]
    assert groups["layer_0_decay"]["param_names"] == ["patch_embed.proj.weight"]
    assert groups["layer_0_decay"]["lr_scale"] == pytest.approx(0.65 ** 13)
    assert "head.weight" in groups["layer_13_decay"]["param_names"]


def test_svc2d_sensor_is_tpami_layer_with_lr_scale():
    model = create("svc2d", img_size=16)
    assert type(model.sensor).__name__ == "PamiExposure"
    scales = create("svc2d").lr_scales()  # sigma depends on the 14 x 14 tiles of a 112 px frame
    assert scales == {"sensor.logits": pytest.approx(1 / math.sqrt(1.5 / (8 * 8 * 16 * 14 * 14)))}
    assert scales["sensor.logits"] == pytest.approx(365.79, abs=0.01)  # SnapPix log: pami_fix lr_scale
    assert model.no_weight_decay() == {"sensor.logits"}


@pytest.mark.parametrize("anchor", ["top_left", "center"])
def test_pattern_conv_is_one_kernel_per_tile_position(anchor):
    torch.manual_seed(0)
    conv = PatternConv(2, 5, 3, tile_size=4, anchor=anchor)
    x = torch.randn(2, 2, 16, 12)
    out = conv(x)
    padded = F.pad(x, conv._padding())
    ref = torch.empty_like(out)
    for i in range(4):  # the definition: at pixel (y, x) the kernel of tile position (y mod 4, x mod 4)
        for j in range(4):
            ref[:, :, i::4, j::4] = F.conv2d(padded, conv.weight[i, j], conv.bias[i, j])[:, :, i::4, j::4]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    if anchor == "top_left":  # window rows y .. y+2 (TPAMI / SnapPix), not centred
        delta = torch.zeros(1, 2, 16, 12)
        delta[0, 0, 5, 6] = 1.0
        hit = (conv(delta) - conv(torch.zeros_like(delta))).abs().sum(1)[0]
        assert set(map(tuple, hit.nonzero().tolist())) <= {(y, x) for y in (3, 4, 5) for x in (4, 5, 6)}


# ------------------------------------------------------------------------------------------- converter
def test_coded_pretrain_checkpoint_into_coded_vit(tmp_path):
    torch.manual_seed(0)
    with mock.patch("snappix.models.vit.init_weights", lambda module, mode="xavier": None):  # speed: any weights do
        pre = create("pretrain_coded_videomae_small_patch8_112", coded_type="naive", decoder_depth=1).eval()
        cls = create("coded_vit_small_patch8_112", sensor_seed=1).eval()  # another random pattern before loading
    path = tmp_path / "checkpoint-299.pth"
    torch.save({"model": pre.state_dict(), "epoch": 299, "config": {"model": "x"}}, path)
    assert not torch.equal(cls.sensor.get_pattern(), pre.sensor.get_pattern())
    report = load_pretrained(cls, path, verbose=False)
    assert sorted(report.missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert report.unexpected == [] and report.mismatched == []
    assert {"mask_token", "decoder_pos_embed", "encoder_to_decoder.weight", "norm.weight"} <= set(report.dropped)
    assert torch.equal(cls.sensor.logits, pre.sensor.logits)  # the pattern comes with the checkpoint
    assert any("exposure pattern" in note for note in report.adapted)
    video = torch.rand(1, 1, 16, 112, 112)
    with torch.no_grad():
        ref = pre.encoder(pre.normalize(pre.sensor(video)))  # pretraining encoder incl. its final norm
        ours = pre.encoder.norm(cls.forward_tokens(video))
    torch.testing.assert_close(ours, ref, rtol=0, atol=0)


def test_videomae_layout_with_namespace_needs_trusted(tmp_path):
    torch.manual_seed(0)
    pre = create("pretrain_videomae_super_tiny_patch8_112", decoder_depth=1, img_size=32).eval()
    state = {f"module.{k}": v for k, v in pre.state_dict().items()}  # DeepSpeed / DDP VideoMAEv2 layout
    assert "module.encoder.blocks.0.attn.q_bias" in state and "module.encoder.patch_embed.proj.weight" in state
    path = tmp_path / "videomae.pth"
    torch.save({"module": state, "args": argparse.Namespace(model="pretrain_videomae"), "epoch": 1}, path)
    cls = create("video_vit_super_tiny_patch8_112", img_size=32).eval()
    with pytest.raises(CheckpointError, match="trusted=True"):
        load_pretrained(cls, path, verbose=False)
    report = load_pretrained(cls, path, trusted=True, verbose=False)
    assert sorted(report.missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert report.unexpected == [] and report.mismatched == []
    video = torch.rand(2, 1, 16, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(pre.encoder.norm(cls.forward_tokens(video)), pre.encoder(pre.normalize(video)))


def test_timm_qkv_bias_and_videomae_layer_scale_names():
    torch.manual_seed(0)
    kw = dict(img_size=32, num_frames=4, depth=2, init_values=0.1, num_classes=3)
    src = create("video_vit_super_tiny_patch8_112", **kw).eval()
    foreign = {}
    for k, v in src.state_dict().items():
        if k.endswith("attn.q_bias"):
            v_bias = src.state_dict()[k.replace("q_bias", "v_bias")]
            foreign[k.replace("q_bias", "qkv.bias")] = torch.cat([v, torch.randn_like(v), v_bias])  # any k bias
        elif k.endswith("attn.v_bias"):
            continue
        else:
            foreign[k.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2")] = v
    assert "blocks.0.gamma_1" in foreign and "blocks.0.attn.qkv.bias" in foreign
    dst = create("video_vit_super_tiny_patch8_112", **kw).eval()
    report = load_pretrained(dst, {"model": foreign}, verbose=False)
    assert report.ok, report.summary()
    video = torch.rand(2, 1, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dst(video), src(video))  # the dropped key bias changes nothing


def test_learned_pos_table_interpolated_for_other_frames_and_size():
    torch.manual_seed(0)
    src = create("video_vit_super_tiny_patch8_112", img_size=32, num_frames=8, depth=1,
                 use_learnable_pos_emb=True)  # grid (4, 4, 4)
    dst = create("video_vit_super_tiny_patch8_112", img_size=32, num_frames=16, depth=1,
                 use_learnable_pos_emb=True)  # grid (8, 4, 4)
    report = load_pretrained(dst, {"model": src.state_dict()}, verbose=False)
    assert report.ok and any("(4, 4, 4) to (8, 4, 4)" in note for note in report.adapted)
    expected = interpolate_pos_embed(src.pos_embed.detach(), (4, 4, 4), (8, 4, 4))
    torch.testing.assert_close(dst.pos_embed.detach(), expected)
    assert torch.equal(dst.blocks[0].mlp.fc1.weight, src.blocks[0].mlp.fc1.weight)

    bigger = create("video_vit_super_tiny_patch8_112", img_size=48, num_frames=8, depth=1,
                    use_learnable_pos_emb=True)  # grid (4, 6, 6): other frame size
    report = load_pretrained(bigger, {"model": src.state_dict()}, verbose=False)
    assert report.ok and bigger.pos_embed.shape == (1, 144, 128)
    torch.testing.assert_close(bigger.pos_embed.detach(),
                               interpolate_pos_embed(src.pos_embed.detach(), (4, 4, 4), (4, 6, 6)))

    fixed = create("video_vit_super_tiny_patch8_112", img_size=32, num_frames=16, depth=1)  # sin-cos table
    before = fixed.pos_embed.clone()
    report = load_pretrained(fixed, {"model": src.state_dict()}, verbose=False)
    assert "pos_embed" in report.dropped and report.ok and torch.equal(fixed.pos_embed, before)


def test_rgb_patch_embedding_into_grey_model():
    torch.manual_seed(0)
    kw = dict(img_size=32, num_frames=4, depth=1, num_classes=3, norm_mean=None, norm_std=None)
    rgb = create("video_vit_super_tiny_patch16_224", in_chans=3, **kw).eval()
    grey = create("video_vit_super_tiny_patch16_224", in_chans=1, **kw).eval()
    report = load_pretrained(grey, {"model": rgb.state_dict()}, verbose=False)
    assert report.ok and any("3 -> 1 input channels" in note for note in report.adapted)
    video = torch.rand(2, 1, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(grey(video), rgb(video.expand(-1, 3, -1, -1, -1)))


def _snappix_layout(model):
    """Our C3D / SVC2D state dict written with SnapPix's names (inverse of the converter's remap)."""
    out = {}
    for k, v in model.state_dict().items():
        if k == "blocks.0.conv1.weight" and v.dim() == 6:  # PatternConv: 64 separate Conv2d
            for i in range(v.shape[0]):
                for j in range(v.shape[1]):
                    out[f"conv1.weight{i}{j}.weight"] = v[i, j]
            continue
        if k == "blocks.0.conv1.bias" and v.dim() == 3:
            for i in range(v.shape[0]):
                for j in range(v.shape[1]):
                    out[f"conv1.weight{i}{j}.bias"] = v[i, j]
            continue
        if k == "sensor.logits":
            out["coded_layer.weight"] = v
            continue
        if k == "sensor.anneal_left":
            continue  # SnapPix's Exposuref does not save its annealing counter
        out[k.split(".", 2)[2] if k.startswith("blocks.") else k] = v
    out["bn6.weight"], out["bn6.bias"] = torch.ones(4096), torch.zeros(4096)  # SnapPix's unused layer
    return out


@pytest.mark.parametrize("name", CNNS)
def test_snappix_cnn_checkpoints_load(name):
    torch.manual_seed(0)
    size = small_kwargs(name)["img_size"]
    src = create(name, img_size=size, num_classes=4).eval()
    foreign = _snappix_layout(src)
    assert "conv3a.weight" in foreign and "bn3.running_mean" in foreign
    torch.manual_seed(1)
    dst = create(name, img_size=size, num_classes=4, **({"sensor_seed": 1} if name == "svc2d" else {})).eval()
    report = load_pretrained(dst, {"model": foreign}, verbose=False)
    assert report.ok, report.summary()
    if name == "svc2d":
        assert int(dst.sensor.anneal_left) == 0  # a trained pattern is not re-annealed
    video = torch.rand(2, 1, 16, size, size)
    with torch.no_grad():
        torch.testing.assert_close(dst(video), src(video))


def test_convert_reports_unexpected_and_mismatched_head():
    src = create("coded_vit_super_tiny_patch8_112", img_size=32, depth=1, num_classes=10)
    state = dict(src.state_dict())
    state["teacher.blocks.0.weight"] = torch.zeros(2)
    dst = create("coded_vit_super_tiny_patch8_112", img_size=32, depth=1, num_classes=5)
    converted, _ = convert_state_dict(dst, {"state_dict": state})
    assert "head.weight" in converted
    report = load_pretrained(dst, {"state_dict": state}, verbose=False)
    assert report.unexpected == ["teacher.blocks.0.weight"]
    assert sorted(k for k, _, _ in report.mismatched) == ["head.bias", "head.weight"]
    assert sorted(report.missing) == ["head.bias", "head.weight"]  # skipped for the shape: kept at init
    with pytest.raises(RuntimeError, match="do not match"):
        load_pretrained(dst, {"state_dict": state}, verbose=False, strict=True)


def test_classes_are_the_registered_ones():
    assert isinstance(create("coded_vit_super_tiny_patch8_112", img_size=32, depth=1), CodedViTClassifier)
    assert isinstance(create("video_vit_super_tiny_patch8_112", img_size=32, num_frames=4, depth=1),
                      VideoViTClassifier)
    with pytest.raises(ValueError, match="VideoViTClassifier"):
        create("coded_vit_super_tiny_patch8_112", coded_type="none", img_size=32, depth=1)


def test_dropout_options_and_shared_flags():
    torch.manual_seed(0)
    model = create("video_vit_super_tiny_patch8_112", img_size=32, num_frames=4, depth=1, drop_rate=0.5,
                   attn_drop_rate=0.5, head_drop_rate=0.5)
    video = torch.rand(2, 1, 4, 32, 32)
    assert not torch.equal(model(video), model(video))  # training mode: dropout active
    model.eval()
    assert torch.equal(model(video), model(video))
    assert model.blocks[0].attn.attn_drop == 0.5 and model.blocks[0].mlp.drop1.p == 0.5
    # flags a shared finetuning entry point passes to every model are accepted (and logged) where meaningless
    cnn = timm.create_model("c3d", img_size=16, drop_path_rate=0.1, head_drop_rate=0.0, coded_type="decor_fix")
    assert cnn.sensor is None and cnn.drop.p == 0.5
    vit = timm.create_model("video_vit_super_tiny_patch8_112", img_size=32, num_frames=4, depth=1, coded_type="pami")
    assert vit.sensor is None
    svc = timm.create_model("svc2d", img_size=16, drop_path_rate=0.1, coded_type="long")
    assert type(svc.sensor).__name__ == "CodedExposure" and not svc.lr_scales()


def test_default_decor_fix_pattern_from_pattern_dir():
    path = REPO.parent / "shared" / "data" / "snappix_patterns"
    if not (path / "pattern_4.pth").is_file():
        pytest.skip("SnapPix pattern files not found (<repo>/../shared/data/snappix_patterns)")
    model = timm.create_model("coded_vit_super_tiny_patch8_112", pattern_dir=str(path), img_size=32, depth=1)
    pattern = model.sensor.get_pattern()
    assert pattern.shape == (1, 16, 8, 8) and int(pattern.sum()) == 116  # pattern_4 (spec §2.3), frozen
    assert not model.sensor.logits.requires_grad
    shipped = timm.create_model("coded_vit_super_tiny_patch8_112", img_size=32, depth=1)  # no folder: shipped pattern_4
    assert torch.equal(shipped.sensor.get_pattern(), pattern) and not shipped.sensor.logits.requires_grad
