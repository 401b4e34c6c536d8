"""VideoMamba: token order, bidirectional mixer, parameter counts, layer decay, checkpoint conversion."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

import snappix.models  # noqa: F401  (registers the models)
from snappix.engine.optim import create_optimizer, param_groups
from snappix.methods.pretrained import load_pretrained
from snappix.models.factory import classifier_from_flags
from snappix.models.mamba_mixer import BiMambaMixer
from snappix.models.videomamba import VideoMamba

SMALL = dict(img_size=32, patch_size=16, embed_dim=32, depth=2, drop_path_rate=0.0)


def small_model(**kwargs) -> VideoMamba:
    torch.manual_seed(kwargs.pop("seed", 0))
    return VideoMamba(**{"num_classes": 5, "num_frames": 2, **SMALL, **kwargs})


def reference_layout(model: VideoMamba) -> dict[str, torch.Tensor]:
    """The model's weights under VideoMamba's own names (``layers.k.*``)."""
    return {("layers." + k[len("blocks."):] if k.startswith("blocks.") else k): v.clone()
            for k, v in model.state_dict().items()}


# ------------------------------------------------------------------------------------------ model
def test_token_order_is_cls_then_frames_spatial_first():
    model = small_model(num_frames=3, in_chans=1, norm_mean=None, norm_std=None)
    with torch.no_grad():
        model.temporal_pos_embedding.copy_(torch.randn_like(model.temporal_pos_embedding))
    video = torch.rand(1, 1, 3, 32, 32)
    tokens = model.embed(video)
    assert tokens.shape == (1, 1 + 3 * 4, 32)
    kernel = model.patch_embed.proj.weight[:, :, 0]  # (D, 1, 16, 16)
    torch.testing.assert_close(tokens[0, 0], (model.cls_token + model.pos_embed[:, 0])[0, 0])
    for t in range(3):
        frame = F.conv2d(video[:, :, t], kernel, model.patch_embed.proj.bias, stride=16)  # (1, D, 2, 2)
        expected = frame.flatten(2).transpose(1, 2)[0] + model.pos_embed[0, 1:] + model.temporal_pos_embedding[0, t]
        torch.testing.assert_close(tokens[0, 1 + 4 * t: 1 + 4 * (t + 1)], expected, rtol=1e-5, atol=1e-5)


def test_forward_backward_reaches_both_directions():
    model = small_model()
    logits = model(torch.rand(2, 3, 2, 32, 32))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    mixer = model.blocks[0].mixer
    for name in ("A_log", "A_b_log", "D", "D_b", "conv1d.weight", "conv1d_b.weight", "x_proj.weight",
                 "x_proj_b.weight", "dt_proj.bias", "dt_proj_b.bias", "in_proj.weight", "out_proj.weight"):
        grad = mixer.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_wrong_clip_is_rejected():
    model = small_model()
    with pytest.raises(ValueError, match="expects a clip"):
        model(torch.rand(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="floating"):
        model(torch.zeros(1, 3, 2, 32, 32, dtype=torch.uint8))


def _live_mixer(zero_backward: bool = False) -> BiMambaMixer:
    torch.manual_seed(0)
    mixer = BiMambaMixer(8, depth=1, scan_backend="sequential").double()
    with torch.no_grad():  # larger inputs, B, C and slower decay than at init: the scan term is far above rounding
        mixer.in_proj.weight.normal_(0, 0.5)
        mixer.x_proj.weight.normal_(0, 0.5)
        mixer.x_proj_b.weight.normal_(0, 0.0 if zero_backward else 0.5)
        mixer.dt_proj.bias.fill_(-3.0)
        mixer.dt_proj_b.bias.fill_(-3.0)
    return mixer


def test_both_directions_are_live():
    mixer = _live_mixer()
    h = torch.randn(1, 12, 8, dtype=torch.float64)
    out = mixer(h)
    last, first = h.clone(), h.clone()
    last[:, -1] += 1.0
    first[:, 0] += 1.0
    assert (mixer(last)[:, 0] - out[:, 0]).abs().max() > 1e-4  # only the backward scan carries this
    assert (mixer(first)[:, -1] - out[:, -1]).abs().max() > 1e-4  # only the forward scan carries this
    # control: with the backward direction's B and C at zero, the output is causal (forward scan only)
    causal = _live_mixer(zero_backward=True)
    assert (causal(last)[:, 0] - causal(h)[:, 0]).abs().max() == 0


def test_scan_backends_give_the_same_model_output():
    model = small_model()
    video = torch.rand(1, 3, 2, 32, 32)
    outs = []
    for backend in ("sequential", "parallel"):
        for blk in model.blocks:
            blk.mixer.scan_backend = backend
        outs.append(model(video))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)


def test_bf16_autocast_keeps_residual_stream_float32():
    model = small_model()
    seen = []
    model.blocks[0].register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(1, 3, 2, 32, 32))
    assert seen == [torch.float32]
    assert torch.isfinite(logits.float()).all()


# expected counts (224 px, 8 frames, RGB); the reference layout has exactly these tensors
PARAMS = {"videomamba_tiny": (6_956_544, 7_033_744), "videomamba_small": (25_414_656, 25_568_656),
          "videomamba_middle": (73_645_056, 73_875_856)}


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts(name):
    with torch.device("meta"):
        counts = tuple(sum(p.numel() for p in timm.create_model(name, num_classes=k).parameters()) for k in (0, 400))
    assert counts == PARAMS[name]


def test_registry_accepts_the_finetuning_flags():
    model = classifier_from_flags(dict(model="videomamba_tiny", input_size=32, num_frames=2, drop_path=0.2,
                                       init_scale=0.5, coded_type=None), num_classes=3)
    assert isinstance(model, VideoMamba) and model.grid == (2, 2, 2) and model.head.out_features == 3
    assert len(model.blocks) == 24 and model.blocks[-1].drop_path.drop_prob == pytest.approx(0.2)
    grey = timm.create_model("videomamba_tiny", in_chans=1, num_frames=1, img_size=16, fc_drop_rate=0.3, depth=1,
                             attn_impl="sdpa")
    assert grey.patch_embed.proj.weight.shape == (192, 1, 1, 16, 16) and grey.head_drop.p == 0.3


def test_super_tiny_registered_defaults_build_and_run():
    """The CPU demo size works with its registered defaults (64 px: a multiple of its 32-px patch)."""
    for name in ("videomamba_super_tiny", "videomamba_super_tiny_pretrain"):
        model = timm.create_model(name)
        assert model.grid == (4, 2, 2) and model.img_size == 64 and model.in_chans == 1
    out = timm.create_model("videomamba_super_tiny", num_classes=8)(torch.rand(2, 1, 16, 64, 64))
    assert out.shape == (2, 8)


# ------------------------------------------------------------------------------------------ optimiser
def test_layer_decay_scales_differ_per_block():
    model = small_model(depth=3)
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale_of = {n: g["lr_scale"] for g in groups for n in g["param_names"]}
    assert scale_of["blocks.0.mixer.in_proj.weight"] == pytest.approx(0.5 ** 3)
    assert scale_of["blocks.1.mixer.A_b_log"] == pytest.approx(0.5 ** 2)
    assert scale_of["blocks.2.norm.weight"] == pytest.approx(0.5)
    for name in ("patch_embed.proj.weight", "pos_embed", "cls_token", "temporal_pos_embedding"):
        assert scale_of[name] == pytest.approx(0.5 ** 4), name
    assert scale_of["head.weight"] == scale_of["norm_f.weight"] == 1.0
    decay_of = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    assert decay_of["blocks.0.mixer.A_log"] == decay_of["temporal_pos_embedding"] == 0.0
    assert decay_of["blocks.0.mixer.x_proj.weight"] == 0.05
    lrs = {g["lr"] for g in create_optimizer(model, lr=1e-3, layer_decay=0.5).param_groups}
    assert len(lrs) == 5  # embeddings, three blocks, head


# ------------------------------------------------------------------------------------------ checkpoints
def test_reference_video_checkpoint_loads_exactly():
    source = small_model(seed=1)
    state = {"model": {"module." + k: v for k, v in reference_layout(source).items()}}
    assert "module.layers.0.mixer.A_b_log" in state["model"]
    target = small_model(seed=2)
    report = load_pretrained(target, state, verbose=False)
    assert report.ok, report.summary()
    video = torch.rand(1, 3, 2, 32, 32)
    torch.testing.assert_close(target.eval()(video), source.eval()(video))


def test_image_checkpoint_into_a_video_model():
    image = small_model(seed=1, num_classes=1000)
    state = {k: v for k, v in reference_layout(image).items() if k != "temporal_pos_embedding"}
    state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"][:, :, 0]  # a 2-D (D, C, 16, 16) kernel
    video_model = small_model(seed=2, num_frames=4, tubelet_size=2, num_classes=7)
    report = load_pretrained(video_model, {"model": state}, verbose=False)
    assert sorted(report.missing) == ["head.bias", "head.weight", "temporal_pos_embedding"], report.summary()
    assert not report.unexpected and not report.mismatched
    assert {"head.weight", "head.bias"} <= set(report.dropped)
    kernel = video_model.patch_embed.proj.weight.detach()
    torch.testing.assert_close(kernel[:, :, 1], state["patch_embed.proj.weight"])  # centre slice of 2
    assert kernel[:, :, 0].abs().max() == 0
    torch.testing.assert_close(video_model.blocks[1].mixer.A_b_log, state["layers.1.mixer.A_b_log"])


def test_frame_count_and_resolution_change():
    source = small_model(seed=1, num_frames=4)
    with torch.no_grad():
        source.temporal_pos_embedding.copy_(torch.linspace(0, 3, 4)[None, :, None].expand(1, 4, 32))
        source.pos_embed[:, 1:] = 0.25
    target = small_model(seed=2, num_frames=8, img_size=48)  # 4 -> 8 frames, 2x2 -> 3x3 patches
    report = load_pretrained(target, reference_layout(source), verbose=False)
    assert report.ok, report.summary()
    assert any("temporal_pos_embedding: 4 -> 8" in note for note in report.adapted)
    assert any("pos_embed: 4 -> 9" in note for note in report.adapted)
    temporal = target.temporal_pos_embedding.detach()[0, :, 0]
    # linear, align_corners=False: the ramp 0..3 resampled at (i + 0.5) / 2 - 0.5, clamped at the ends
    torch.testing.assert_close(temporal, (torch.arange(8) * 0.5 - 0.25).clamp(0, 3))
    torch.testing.assert_close(target.pos_embed[0, 1:].detach(), torch.full((9, 32), 0.25))
    torch.testing.assert_close(target.pos_embed[0, 0], source.pos_embed[0, 0])  # CLS entry untouched


def test_rgb_checkpoint_into_grey_model():
    source = small_model(seed=1)
    target = small_model(seed=2, in_chans=1)
    report = load_pretrained(target, reference_layout(source), verbose=False)
    assert report.ok, report.summary()
    torch.testing.assert_close(target.patch_embed.proj.weight, source.patch_embed.proj.weight.sum(1, keepdim=True))
