"""Students of masked distillation (UMT / VideoMamba §3.4): output contract, visible-only token path, backbone
keys that load into the classifiers, errors, gradients."""

from __future__ import annotations

import pytest
import timm
import torch

import snappix.models  # noqa: F401  (registers the models)
from snappix.methods.pretrained import load_pretrained
from snappix.models.distill_student import DistillVideoViT, VideoMambaPretrain
from snappix.models.pos_embed import sincos_table

#: every registered student with small sizes: (name, kwargs, channels)
MAMBA_ST = dict(img_size=64, num_frames=16, tubelet_size=4, patch_size=16)  # grid (4, 4, 4)
STUDENTS = [
    ("videomamba_super_tiny_pretrain", MAMBA_ST, 1),
    ("videomamba_tiny_pretrain", dict(img_size=32, num_frames=4, depth=2), 3),
    ("videomamba_small_pretrain", dict(img_size=32, num_frames=4, depth=2), 3),
    ("videomamba_middle_pretrain", dict(img_size=32, num_frames=4, depth=2), 3),
    ("distill_video_vit_super_tiny_patch16_112", dict(img_size=32, num_frames=8), 1),
    ("distill_video_vit_small_patch16_224", dict(img_size=32, num_frames=4, depth=2), 1),
    ("distill_video_vit_base_patch16_224", dict(img_size=32, num_frames=4, depth=2), 1),
]
WIDTHS = {"super_tiny": 96, "tiny": 192, "small": 384, "middle": 576}


def make(name: str, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return timm.create_model(name, **kwargs).eval()


def fixed_count_mask(batch: int, n: int, hidden: int, seed: int = 0) -> torch.Tensor:
    """bool (batch, n), ``hidden`` True per row at random positions."""
    g = torch.Generator().manual_seed(seed)
    order = torch.stack([torch.randperm(n, generator=g) for _ in range(batch)])
    return order < hidden


def token_slice(model, index: int) -> tuple[slice, slice, slice]:
    """Frames, rows and columns of the pixels of token ``index`` (spatial-first order)."""
    _, h, w = model.grid
    t, rest = divmod(index, h * w)
    r, c = divmod(rest, w)
    p, k = model.patch_size, model.tubelet_size
    return slice(t * k, (t + 1) * k), slice(r * p, (r + 1) * p), slice(c * p, (c + 1) * p)


def change_token(video: torch.Tensor, model, index: int) -> torch.Tensor:
    out = video.clone()
    ts, hs, ws = token_slice(model, index)
    out[:, :, ts, hs, ws] = torch.rand_like(out[:, :, ts, hs, ws])
    return out


# ------------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("name,kwargs,chans", STUDENTS)
def test_output_shape_unit_rows_and_attributes(name, kwargs, chans):
    model = make(name, teacher_dim=24, **kwargs)
    n = model.grid[0] * model.grid[1] * model.grid[2]
    mask = fixed_count_mask(2, n, n // 2)
    video = torch.rand(2, chans, kwargs["num_frames"], kwargs["img_size"], kwargs["img_size"])
    with torch.no_grad():
        out = model(video, mask)
    assert out.shape == (2, 1 + n - n // 2, 24) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(2, 1 + n - n // 2))
    assert model.needs_tube_mask is False and model.teacher_dim == 24
    assert model.num_frames == kwargs["num_frames"] and model.img_size == kwargs["img_size"]
    assert model.grid == (kwargs["num_frames"] // model.tubelet_size, kwargs["img_size"] // model.patch_size,
                          kwargs["img_size"] // model.patch_size)
    if name.startswith("videomamba"):
        assert model.embed_dim == WIDTHS[name[len("videomamba_"):-len("_pretrain")]]
        assert model.in_chans == chans


def test_defaults_and_pass_through():
    model = timm.create_model("videomamba_super_tiny_pretrain", patch_size=16, img_size=64, num_frames=16,
                              tubelet_size=4)
    assert model.grid == (4, 4, 4) and model.patch_size == 16 and model.teacher_dim == 512
    default = timm.create_model("videomamba_super_tiny_pretrain")  # 64 px (the classifier's 112 px would not tile)
    assert default.grid == (4, 2, 2) and default.in_chans == 1 and default.embed_dim == 96
    assert all(isinstance(b.drop_path, torch.nn.Identity) for b in default.blocks)  # drop path 0.0 by default
    assert not hasattr(timm.create_model("videomamba_tiny_pretrain", depth=1), "temporal_pos_embedding")
    assert timm.create_model("videomamba_tiny_pretrain", depth=1, in_chans=1).in_chans == 1
    vit = timm.create_model("distill_video_vit_super_tiny_patch16_112", tubelet_size=2, patch_size=8)
    assert vit.grid == (8, 14, 14) and vit.embed_dim == 128 and vit.teacher_dim == 512
    assert timm.create_model("distill_video_vit_base_patch16_224", depth=1).grid == (8, 14, 14)
    # options a masked-pretraining entry point passes to every model are ignored
    timm.create_model("videomamba_super_tiny_pretrain", decoder_depth=4, coded_type=None)


def test_mamba_fixed_sincos_positions_and_visible_order():
    model = make("videomamba_super_tiny_pretrain", in_chans=1, **MAMBA_ST)
    n = 64
    assert "pos_embed" not in model.state_dict() and "temporal_pos_embedding" not in model.state_dict()
    torch.testing.assert_close(model.pos_embed, sincos_table(1 + n, 96))
    video, mask = torch.rand(2, 1, 16, 64, 64), fixed_count_mask(2, n, 48)
    with torch.no_grad():
        tokens = model.embed(video, mask)
        expected = (model.patch_tokens(video) + model.pos_embed[:, 1:])[~mask].reshape(2, 16, 96)
    torch.testing.assert_close(tokens[:, 1:], expected)
    torch.testing.assert_close(tokens[:, 0], (model.cls_token + model.pos_embed[:, :1])[0].expand(2, -1))


def test_vit_row0_is_the_mean_of_the_visible_tokens():
    model = make("distill_video_vit_super_tiny_patch16_112", img_size=32, num_frames=8)
    video, mask = torch.rand(2, 1, 8, 32, 32), fixed_count_mask(2, 8, 3)
    with torch.no_grad():
        tokens = model.forward_tokens(video, mask)
        direct = model.encoder(model.input_norm(video), mask)
    torch.testing.assert_close(tokens[:, 1:], direct)
    torch.testing.assert_close(tokens[:, 0], direct.mean(dim=1))


# ------------------------------------------------------------------------------------------ visible tokens only
@pytest.mark.parametrize("name,kwargs", [("videomamba_super_tiny_pretrain", MAMBA_ST),
                                         ("distill_video_vit_super_tiny_patch16_112", dict(img_size=64, num_frames=8))])
def test_only_visible_tokens_are_processed(name, kwargs):
    model = make(name, **kwargs)
    n = model.grid[0] * model.grid[1] * model.grid[2]
    mask = fixed_count_mask(1, n, n // 2, seed=3)
    hidden = mask[0].nonzero().flatten().tolist()
    visible = (~mask[0]).nonzero().flatten().tolist()
    video = torch.rand(1, 1, kwargs["num_frames"], kwargs["img_size"], kwargs["img_size"])
    with torch.no_grad():
        base = model(video, mask)
        after_hidden = model(change_token(video, model, hidden[0]), mask)
        after_visible = model(change_token(video, model, visible[1]), mask)  # row 2 of the output
    torch.testing.assert_close(after_hidden, base, rtol=0, atol=1e-6)
    change = (after_visible[0] - base[0]).abs().amax(dim=-1)
    assert change[2] > 1e-4  # the changed token's own row
    # other rows too: the bidirectional scan / attention mixes along the sequence (at initialisation the Mamba
    # scan decays fast, so only the rows near the change move by much more than rounding)
    assert change[1] > 1e-5 and change[3] > 1e-5 and change[0] > 1e-6


# ------------------------------------------------------------------------------------------ finetuning keys
@pytest.mark.parametrize("size,kwargs", [("super_tiny", dict(MAMBA_ST, in_chans=1)),
                                         ("tiny", dict(img_size=32, num_frames=4, depth=2))])
def test_mamba_backbone_loads_into_the_classifier(size, kwargs):
    student = make(f"videomamba_{size}_pretrain", seed=1, **kwargs)
    classifier = make(f"videomamba_{size}", seed=2, num_classes=5, **kwargs)
    state = student.state_dict()
    assert any(k.startswith("blocks.1.mixer.") for k in state) and "cls_token" in state and "norm_f.weight" in state
    result = classifier.load_state_dict(state, strict=False)
    assert set(result.missing_keys) == {"pos_embed", "temporal_pos_embedding", "head.weight", "head.bias"}
    assert all(k.startswith("decoder.") for k in result.unexpected_keys) and result.unexpected_keys
    own = classifier.state_dict()
    for key in ("patch_embed.proj.weight", "cls_token", "blocks.0.mixer.in_proj.weight", "blocks.1.mixer.A_b_log",
                "blocks.1.norm.weight", "norm_f.weight"):
        torch.testing.assert_close(own[key], state[key], rtol=0, atol=0)
    # the finetuning path (run_finetuning.py --finetune): the distillation decoder is dropped, not unexpected
    fresh = make(f"videomamba_{size}", seed=3, num_classes=5, **kwargs)
    report = load_pretrained(fresh, {"model": state}, verbose=False, min_loaded=0.9)
    assert set(report.missing) == {"pos_embed", "temporal_pos_embedding", "head.weight", "head.bias"}
    assert not report.unexpected and not report.mismatched
    assert {k for k in report.dropped if k.startswith("decoder.")} == {k for k in state if k.startswith("decoder.")}
    key = "blocks.1.mixer.x_proj.weight"
    torch.testing.assert_close(fresh.state_dict()[key], state[key], rtol=0, atol=0)


@pytest.mark.parametrize("size,geometry,kwargs", [("super_tiny", "patch16_112", {}),
                                                  ("small", "patch16_224", dict(depth=1))])
def test_vit_backbone_loads_into_the_classifier(size, geometry, kwargs):
    student = make(f"distill_video_vit_{size}_{geometry}", seed=1, **kwargs)  # registered geometry
    classifier = make(f"video_vit_{size}_{geometry}", seed=2, num_classes=5, **kwargs)
    state = student.state_dict()
    report = load_pretrained(classifier, {"model": state}, verbose=False, min_loaded=0.9)
    assert set(report.missing) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert not report.unexpected and not report.mismatched
    # the encoder's final norm (``encoder.norm.*`` -> ``norm.*``; the classifier mean-pools into a fresh fc_norm)
    # and the distillation decoder are dropped
    assert {"norm.weight", "norm.bias"} | {k for k in state if k.startswith("decoder.")} <= set(report.dropped)
    own = classifier.state_dict()
    for key in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.q_bias", "blocks.0.mlp.fc2.bias",
                "blocks.0.norm1.weight"):
        torch.testing.assert_close(own[key], state["encoder." + key], rtol=0, atol=0)


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("name,kwargs", [("videomamba_super_tiny_pretrain", MAMBA_ST),
                                         ("distill_video_vit_super_tiny_patch16_112", dict(img_size=64, num_frames=8))])
def test_bad_inputs_raise(name, kwargs):
    model = make(name, **kwargs)
    n = model.grid[0] * model.grid[1] * model.grid[2]
    video = torch.rand(2, 1, kwargs["num_frames"], kwargs["img_size"], kwargs["img_size"])
    good = fixed_count_mask(2, n, n // 2)
    with pytest.raises(ValueError, match=r"encoder_mask must be \(B=2, N="):
        model(video, torch.zeros(2, n + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="encoder_mask must be"):
        model(video, good[:1])
    with pytest.raises(TypeError, match="bool"):
        model(video, good.long())
    unequal = good.clone()
    unequal[0] = False
    with pytest.raises(ValueError, match="same number of tokens"):
        model(video, unequal)
    with pytest.raises(ValueError, match="expects a clip"):
        model(video[:, :, :-1], good)
    with pytest.raises(ValueError, match="floating"):
        model((video * 255).to(torch.uint8), good)


def test_constructor_errors():
    with pytest.raises(ValueError, match="num_classes"):
        VideoMambaPretrain(num_classes=10, img_size=32, num_frames=2, embed_dim=16, depth=1)
    with pytest.raises(ValueError, match="ordinary video"):
        timm.create_model("distill_video_vit_super_tiny_patch16_112", coded_type="decor_fix")
    model = DistillVideoViT(img_size=32, num_frames=2, tubelet_size=2, embed_dim=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="hides every token"):
        model(torch.rand(1, 1, 2, 32, 32), torch.ones(1, 4, dtype=torch.bool))


# ------------------------------------------------------------------------------------------ training
@pytest.mark.parametrize("name,kwargs", [("videomamba_super_tiny_pretrain", MAMBA_ST),
                                         ("distill_video_vit_super_tiny_patch16_112", dict(img_size=64, num_frames=8))])
def test_backward_reaches_every_block(name, kwargs):
    model = make(name, teacher_dim=16, **kwargs).train()
    n = model.grid[0] * model.grid[1] * model.grid[2]
    video = torch.rand(2, 1, kwargs["num_frames"], kwargs["img_size"], kwargs["img_size"])
    out = model(video, fixed_count_mask(2, n, n // 2))
    target = torch.nn.functional.normalize(torch.randn_like(out), dim=-1)
    (2 - 2 * (out * target).sum(-1)).mean().backward()
    blocks = model.blocks if isinstance(model, VideoMambaPretrain) else model.encoder.blocks
    for k, block in enumerate(blocks):
        grads = [p.grad for p in block.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, f"block {k}"
    assert model.decoder.proj.weight.grad.abs().sum() > 0
    patch = model.patch_embed if isinstance(model, VideoMambaPretrain) else model.encoder.patch_embed
    assert patch.proj.weight.grad.abs().sum() > 0
    if isinstance(model, VideoMambaPretrain):
        assert model.cls_token.grad.abs().sum() > 0
