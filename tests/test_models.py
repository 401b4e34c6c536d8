"""Models: layers, patch embedding, position tables, patchify, ViT encoder, MAEs, timm registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

import snappix.models as M
from snappix.models.patchify import patchify, unpatchify
from snappix.masking import build_mask_generator

REPO = Path(__file__).resolve().parents[1]


def pattern_dir() -> Path | None:
    """SnapPix's released patterns: $SNAPPIX_PATTERN_DIR, else <repo>/../shared/data/snappix_patterns."""
    env = os.environ.get("SNAPPIX_PATTERN_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "snappix_patterns"
    return path if (path / "pattern_4.pth").is_file() else None


needs_patterns = pytest.mark.skipif(
    pattern_dir() is None,
    reason="SnapPix pattern files not found: set SNAPPIX_PATTERN_DIR or provide <repo>/../shared/data/snappix_patterns")

NAMES = [f"pretrain_videomae_{s}_{g}" for s in ("super_tiny", "small", "base") for g in ("patch8_112", "patch16_224")]
NAMES += [f"pretrain_coded_videomae_{s}_patch8_112" for s in ("super_tiny", "small", "base")]


def masks(grid, batch, seed=0, ratio=0.85, decoder_ratio=0.5):
    rng = np.random.default_rng(seed)
    enc = build_mask_generator("tube", grid, ratio)
    dec = build_mask_generator("run_cell", grid, decoder_ratio)
    em = torch.from_numpy(np.stack([enc(rng) for _ in range(batch)]))
    dm = torch.from_numpy(np.stack([dec(rng) for _ in range(batch)]))
    return em, dm


def create(name, **kwargs):
    if "coded" in name:
        kwargs.setdefault("coded_type", "naive")
    return timm.create_model(name, **kwargs)


# ----------------------------------------------------------------------------------------------- registry
def test_all_names_registered_without_collision():
    assert sorted(timm.list_models("pretrain_*videomae*")) == sorted(NAMES)
    code = "import warnings; warnings.simplefilter('error'); import snappix.models"
    res = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Overwriting" not in res.stderr + res.stdout


def test_param_counts_match_snappix_classifiers():
    """Encoder sizes reproduce the parameter counts SnapPix reports for its K400 classifiers (spec §5)."""
    counts = {}
    for name in NAMES:
        model = create(name)
        n = sum(p.numel() for p in model.parameters())
        assert n > sum(p.numel() for p in model.encoder.parameters()) > 0
        counts[name] = sum(p.numel() for p in model.encoder.parameters())
    # classifier = encoder (final norm <-> fc_norm, same size) + head(D -> 400) + 1024 pattern logits
    assert round((counts["pretrain_coded_videomae_small_patch8_112"] + 384 * 401 + 1024) / 1e6, 2) == 21.47
    assert round((counts["pretrain_coded_videomae_base_patch8_112"] + 768 * 401 + 1024) / 1e6, 2) == 85.41
    assert round((counts["pretrain_videomae_super_tiny_patch8_112"] + 128 * 401) / 1e6, 2) == 1.65


def test_super_tiny_coded_decoder_reproduces_head_dim_42():
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", encoder_depth=1, decoder_depth=1)
    attn = model.decoder.blocks[0].attn
    assert (attn.num_heads, attn.head_dim) == (3, 42)
    assert attn.qkv.weight.shape == (3 * 126, 128) and attn.proj.weight.shape == (128, 126)


def test_create_model_kwargs_and_pretrained_refused():
    model = timm.create_model("pretrain_coded_videomae_small_patch8_112", coded_type="long", decoder_depth=2,
                              drop_path_rate=0.1, encoder_depth=2, pattern_path=None)
    assert len(model.decoder.blocks) == 2 and len(model.encoder.blocks) == 2
    assert model.encoder.blocks[1].drop_path.drop_prob == pytest.approx(0.1)
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("pretrain_videomae_small_patch8_112", pretrained=True)


@needs_patterns
def test_create_coded_with_pattern_path():
    path = pattern_dir() / "pattern_4.pth"
    model = timm.create_model("pretrain_coded_videomae_super_tiny_patch8_112", coded_type="decor_fix",
                              pattern_path=str(path), decoder_depth=1)
    pattern = model.sensor.get_pattern()
    assert pattern.shape == (1, 16, 8, 8) and int(pattern.sum()) == 116  # SnapPix pattern_4 (spec §2.3)
    assert not model.sensor.logits.requires_grad


# ----------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes_every_model(name):
    torch.manual_seed(0)
    model = create(name, encoder_depth=1, decoder_depth=1).eval()
    p = model.patch_size
    assert model.patch_dim == 2 * p * p * 1
    b = 2
    video = torch.rand(b, 1, 16, model.img_size, model.img_size)
    em, dm = masks(model.grid, b)
    with torch.no_grad():
        out = model(video, em, dm)  # VideoMAEv2 dual masking
        assert out["pred"].shape == (b, int((~dm[0]).sum()), model.patch_dim)
        assert torch.equal(out["query_mask"], ~dm)
        out = model(video, em)  # VideoMAE v1: reconstruct the hidden tokens
    assert out["pred"].shape == (b, int(em[0].sum()), model.patch_dim)
    assert torch.equal(out["query_mask"], em) and out["pred"].dtype == torch.float32
    assert (model.sensor is None) == ("coded" not in name)


def test_reconstruction_mode_predicts_all_1568_tubelets():
    model = create("pretrain_coded_videomae_super_tiny_patch8_112").eval()  # full size (SnapPix §4)
    none = torch.zeros(1, 1568, dtype=torch.bool)
    with torch.no_grad():
        out = model(torch.rand(1, 1, 16, 112, 112), none, none)
    assert out["pred"].shape == (1, 1568, 128) and bool(out["query_mask"].all())
    assert model.encoder.num_patches == 196 and model.grid == (8, 14, 14)


def test_coded_grid_follows_input_size():
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", img_size=64, num_frames=8, encoder_depth=1,
                   decoder_depth=1)
    assert model.encoder.num_patches == 64 and model.grid == (4, 8, 8)
    assert model.decoder_pos_embed.shape == (1, 256, 128)
    em, dm = masks(model.grid, 2)
    out = model(torch.rand(2, 1, 8, 64, 64), em, dm)
    assert out["pred"].shape == (2, 128, 128)


# ----------------------------------------------------------------------------------------------- attention
def reference_attention(attn: M.Attention, x: torch.Tensor) -> torch.Tensor:
    """softmax(QK^T / sqrt(d)) V from the module's weights, q/v biased, k unbiased, head by head."""
    h, d = attn.num_heads, attn.head_dim
    wq, wk, wv = attn.qkv.weight.chunk(3)
    q, k, v = x @ wq.T + attn.q_bias, x @ wk.T, x @ wv.T + attn.v_bias
    heads = []
    for i in range(h):
        s = slice(i * d, (i + 1) * d)
        a = torch.softmax(q[..., s] @ k[..., s].transpose(-1, -2) / d ** 0.5, dim=-1)
        heads.append(a @ v[..., s])
    return attn.proj(torch.cat(heads, dim=-1))


@pytest.mark.parametrize("dim,heads", [(64, 4), (128, 3)])
def test_sdpa_equals_explicit_attention(dim, heads):
    torch.manual_seed(0)
    attn = M.Attention(dim, heads, attn_impl="sdpa")
    with torch.no_grad():
        attn.q_bias.normal_()
        attn.v_bias.normal_()
    x = torch.randn(2, 50, dim, requires_grad=True)
    out_sdpa = attn(x)
    grad_sdpa = torch.autograd.grad(out_sdpa.sum(), x)[0]
    attn.attn_impl = "explicit"
    out_expl = attn(x)
    grad_expl = torch.autograd.grad(out_expl.sum(), x)[0]
    ref = reference_attention(attn, x)
    torch.testing.assert_close(out_sdpa, out_expl, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_expl, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_sdpa, grad_expl, atol=1e-5, rtol=1e-5)


def test_model_output_same_with_both_attention_impls():
    torch.manual_seed(0)
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", encoder_depth=2, decoder_depth=2).eval()
    em, dm = masks(model.grid, 2)
    video = torch.rand(2, 1, 16, 112, 112)
    with torch.no_grad():
        a = model(video, em, dm)["pred"]
        assert M.set_attn_impl(model, "explicit") == 4
        b = model(video, em, dm)["pred"]
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="attn_impl"):
        M.Attention(32, 2, attn_impl="flash")


def test_layer_scale_and_block_residual():
    blk = M.Block(32, 2, init_values=1e-5)
    assert torch.allclose(blk.ls1.gamma, torch.full((32,), 1e-5))
    x = torch.randn(1, 5, 32)
    assert torch.allclose(blk(x), x, atol=1e-3)  # tiny layer scale -> near-identity block
    assert isinstance(M.Block(32, 2).ls1, torch.nn.Identity)


# ----------------------------------------------------------------------------------------------- patchify
def test_patchify_unpatchify_inverse_and_layout():
    video = torch.randn(2, 3, 4, 16, 24)
    tokens = patchify(video, 2, 8)
    assert tokens.shape == (2, 2 * 2 * 3, 2 * 8 * 8 * 3)
    assert torch.equal(unpatchify(tokens, 2, 8, (2, 2, 3), channels=3), video)
    # value layout (dt, dy, dx, c), token order (t, h, w)
    b, c, t, h, w, dt, dy, dx = 1, 2, 1, 1, 2, 1, 5, 3
    idx = (t * 2 + h) * 3 + w
    assert tokens[b, idx, ((dt * 8 + dy) * 8 + dx) * 3 + c] == video[b, c, t * 2 + dt, h * 8 + dy, w * 8 + dx]
    with pytest.raises(ValueError, match="multiple"):
        patchify(torch.zeros(1, 1, 3, 16, 16), 2, 8)
    with pytest.raises(ValueError):
        unpatchify(tokens, 2, 8, (2, 2, 2), channels=3)


def test_token_order_matches_patch_embedding():
    grid = (2, 3, 4)
    k = torch.arange(24, dtype=torch.float32).reshape(grid)
    # tubelet k (raster t, h, w) is filled with the constant k
    video = k.repeat_interleave(2, 0).repeat_interleave(8, 1).repeat_interleave(8, 2)[None, None]
    tokens = patchify(video, 2, 8)
    assert torch.equal(tokens, torch.arange(24.0)[None, :, None].expand(1, 24, 128))
    embed = M.PatchEmbed3d(patch_size=8, tubelet_size=2, in_chans=1, embed_dim=4)
    with torch.no_grad():
        embed.proj.weight.fill_(1.0)
        embed.proj.bias.zero_()
    out = embed(video)
    assert out.shape == (1, 24, 4)
    torch.testing.assert_close(out[0, :, 0], torch.arange(24.0) * 128)
    with pytest.raises(ValueError, match="not a positive multiple"):
        embed(torch.zeros(1, 1, 4, 20, 16))
    with pytest.raises(ValueError, match="channels"):
        embed(torch.zeros(1, 3, 4, 16, 16))


# ----------------------------------------------------------------------------------------------- pos embed
def test_sincos_table_values():
    table = M.sincos_table(10, 6)
    assert table.shape == (1, 10, 6) and table.dtype == torch.float32
    i, k = 7, 2
    assert table[0, i, 2 * k].item() == pytest.approx(np.sin(i / 10000 ** (2 * k / 6)), abs=1e-6)
    assert table[0, i, 2 * k + 1].item() == pytest.approx(np.cos(i / 10000 ** (2 * k / 6)), abs=1e-6)
    assert torch.equal(table[0, 0, 1::2], torch.ones(3))


@pytest.mark.parametrize("mode", ["bicubic", "trilinear"])
def test_interpolate_pos_embed(mode):
    table = torch.randn(1, 8 * 14 * 14, 16)
    assert torch.equal(M.interpolate_pos_embed(table, (8, 14, 14), (8, 14, 14), mode), table)
    assert M.interpolate_pos_embed(table, (8, 14, 14), (16, 28, 28), mode).shape == (1, 16 * 28 * 28, 16)
    assert M.interpolate_pos_embed(table[0], (8, 14, 14), (4, 7, 7), mode).shape == (4 * 7 * 7, 16)
    const = torch.ones(1, 2 * 4 * 4, 3) * torch.tensor([1.0, -2.0, 3.0])
    torch.testing.assert_close(M.interpolate_pos_embed(const, (2, 4, 4), (3, 6, 5), mode),
                               torch.ones(1, 90, 3) * torch.tensor([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match="positions"):
        M.interpolate_pos_embed(table, (8, 14, 13), (8, 14, 14), mode)


def test_learned_table_option():
    enc = M.VideoViTEncoder(32, 8, 2, 4, 1, 16, 1, 2, use_learnable_pos_emb=True)
    assert isinstance(enc.pos_embed, torch.nn.Parameter) and enc.pos_embed.shape == (1, 32, 16)
    assert 0.005 < enc.pos_embed.std().item() < 0.03 and enc.no_weight_decay() == {"pos_embed"}
    fixed = M.VideoViTEncoder(32, 8, 2, 4, 1, 16, 1, 2)
    assert "pos_embed" not in fixed.state_dict() and fixed.no_weight_decay() == set()


# ----------------------------------------------------------------------------------------------- visible tokens
def test_encoder_keeps_exactly_the_visible_tokens():
    torch.manual_seed(0)
    enc = M.VideoViTEncoder(32, 8, 2, 4, 1, 16, depth=0, num_heads=2, final_norm=False)
    x = torch.randn(3, 1, 4, 32, 32)
    em, _ = masks(enc.grid, 3, ratio=0.75)
    out = enc.forward_features(x, em)
    full = enc.patch_embed(x) + enc.pos_embed
    for b in range(3):
        visible = torch.nonzero(~em[b]).flatten()
        assert torch.equal(out[b], full[b, visible])
    assert enc.forward_features(x).shape == (3, 32, 16)
    uneven = em.clone()
    uneven[0, torch.nonzero(em[0])[0]] = False
    with pytest.raises(ValueError, match="same number"):
        enc.forward_features(x, uneven)
    with pytest.raises(TypeError, match="bool"):
        enc.forward_features(x, em.int())
    with pytest.raises(ValueError, match="token grid"):
        enc.forward_features(torch.randn(1, 1, 4, 40, 32))


@pytest.mark.parametrize("name", ["pretrain_videomae_super_tiny_patch8_112",
                                  "pretrain_coded_videomae_super_tiny_patch8_112"])
def test_predictions_ignore_hidden_pixels(name):
    """Changing pixels under hidden tokens leaves the prediction unchanged; visible pixels change it."""
    torch.manual_seed(0)
    model = create(name, encoder_depth=1, decoder_depth=1).eval()
    em, dm = masks(model.grid, 2)
    video = torch.rand(2, 1, 16, 112, 112)
    hidden_px = unpatchify(em[:, :, None].float().expand(-1, -1, 128), 2, 8, model.grid).bool()
    with torch.no_grad():
        ref = model(video, em, dm)["pred"]
        same = model(torch.where(hidden_px, torch.rand_like(video), video), em, dm)["pred"]
        diff = model(torch.where(hidden_px, video, torch.rand_like(video)), em, dm)["pred"]
    torch.testing.assert_close(same, ref)
    assert not torch.allclose(diff, ref)


def test_mask_errors():
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", encoder_depth=1, decoder_depth=1)
    video = torch.rand(2, 1, 16, 112, 112)
    random_mask = torch.from_numpy(np.stack([build_mask_generator("random", model.grid, 0.85)() for _ in range(2)]))
    with pytest.raises(ValueError, match="tube"):
        model(video, random_mask)
    em, dm = masks(model.grid, 2)
    with pytest.raises(ValueError, match="B=2, N=1568"):
        model(video, em[:, :100])
    with pytest.raises(ValueError, match="expects video"):
        model(torch.rand(2, 1, 8, 112, 112), em)
    # masks given as (B, T', H'W') (VideoMAEv2's running-cell shape) are accepted
    out = model(video, em.view(2, 8, 196), dm.view(2, 8, 196))
    assert out["pred"].shape == (2, 784, 128)
    with pytest.raises(ValueError, match="PretrainVideoMAE"):
        create("pretrain_coded_videomae_super_tiny_patch8_112", coded_type="none")


# ----------------------------------------------------------------------------------------------- gradients
def train_step(model):
    em, dm = masks(model.grid, 2)
    out = model(torch.rand(2, 1, 16, 112, 112), em, dm)
    out["pred"].pow(2).mean().backward()


def assert_grads_reach_encoder_and_decoder(model):
    for name in ("encoder.patch_embed.proj.weight", "encoder.blocks.0.attn.qkv.weight", "encoder.norm.weight",
                 "encoder_to_decoder.weight", "mask_token", "decoder.blocks.0.mlp.fc1.weight", "decoder.head.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_coded_gradients_skip_frozen_sensor():
    torch.manual_seed(0)
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", coded_type="long", encoder_depth=1,
                   decoder_depth=1)
    train_step(model)
    assert_grads_reach_encoder_and_decoder(model)
    assert model.get_parameter("decoder_pos_embed").grad.abs().sum() > 0
    assert model.sensor.logits.grad is None
    assert set(model.no_weight_decay()) == {"mask_token", "decoder_pos_embed", "sensor.logits"}
    assert model.no_weight_decay() <= dict(model.named_parameters()).keys()


@needs_patterns
def test_decor_fix_sensor_frozen_during_training():
    torch.manual_seed(0)
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", coded_type="decor_fix",
                   pattern_dir=str(pattern_dir()), encoder_depth=1, decoder_depth=1)
    before = model.sensor.get_pattern().clone()
    logits = model.sensor.logits.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    train_step(model)
    assert_grads_reach_encoder_and_decoder(model)
    assert model.sensor.logits.grad is None
    opt.step()
    assert torch.equal(model.sensor.logits, logits) and torch.equal(model.sensor.get_pattern(), before)


def test_trainable_sensor_receives_gradient():
    torch.manual_seed(0)
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", coded_type="naive_learned", encoder_depth=1,
                   decoder_depth=1)
    train_step(model)
    assert model.sensor.logits.grad is not None and model.sensor.logits.grad.abs().sum() > 0


def test_video_mae_no_weight_decay_and_init():
    model = create("pretrain_videomae_super_tiny_patch8_112", encoder_depth=1, decoder_depth=1,
                   use_learnable_pos_emb=True)
    assert model.no_weight_decay() == {"mask_token", "encoder.pos_embed"}
    assert model.encoder_to_decoder.bias is None
    assert torch.equal(model.decoder.head.bias, torch.zeros(128))
    w = model.decoder.blocks[0].mlp.fc1.weight  # xavier-uniform bound sqrt(6 / (fan_in + fan_out))
    assert w.abs().max() <= (6 / sum(w.shape)) ** 0.5
    assert "pos_embed" not in model.state_dict() and "encoder.pos_embed" in model.state_dict()


@pytest.mark.parametrize("name", ["pretrain_videomae_super_tiny_patch8_112",
                                  "pretrain_coded_videomae_super_tiny_patch8_112"])
def test_bf16_autocast_forward_backward(name):
    model = create(name, encoder_depth=1, decoder_depth=1)
    em, dm = masks(model.grid, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(2, 1, 16, 112, 112), em, dm)
    assert out["pred"].dtype == torch.bfloat16 and out["pred"].shape == (2, 784, 128)
    out["pred"].float().pow(2).mean().backward()
    assert torch.isfinite(model.decoder.head.weight.grad).all()


def test_grad_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = create("pretrain_coded_videomae_super_tiny_patch8_112", coded_type="long", encoder_depth=2,
                   decoder_depth=1)
    em, dm = masks(model.grid, 2)
    video = torch.rand(2, 1, 16, 112, 112)
    grads = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        model(video, em, dm)["pred"].pow(2).mean().backward()
        grads.append(model.encoder.blocks[0].attn.qkv.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
