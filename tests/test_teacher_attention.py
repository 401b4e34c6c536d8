"""Teacher CLS attention (UMT / VideoMamba attention-guided masking score) on a small random timm ViT:
equal to an explicit step-by-step computation, shape, range, prefix tokens, and the exact visible
count of :func:`attention_guided_mask` on it. No pretrained weights (random init, offline)."""

import pytest
import timm
import torch

from snappix.masking.attention import attention_guided_mask
from snappix.models.teacher_attention import cls_attention

torch.set_num_threads(1)


def tiny_vit(**kwargs):
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                            num_classes=0, **kwargs)
    return vit.eval()


def manual_cls_attention(vit, frames):
    """Every step written out: per-frame images, embed + prefix tokens + pos, blocks but the last, the last
    block's norm1, q / k from its qkv weights, softmax(q k^T / sqrt(d)), CLS row to patches, head mean."""
    b, c, t, h, w = frames.shape
    x = frames.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    with torch.no_grad():
        x = vit.patch_embed(x)
        x = vit._pos_embed(x)
        x = vit.norm_pre(vit.patch_drop(x))
        for blk in vit.blocks[:-1]:
            x = blk(x)
        blk = vit.blocks[-1]
        y = blk.norm1(x)
        heads = blk.attn.num_heads
        dim = y.shape[-1]
        hd = dim // heads
        wq, wk = blk.attn.qkv.weight[:dim], blk.attn.qkv.weight[dim:2 * dim]
        bq, bk = blk.attn.qkv.bias[:dim], blk.attn.qkv.bias[dim:2 * dim]
        q = (y @ wq.T + bq).reshape(y.shape[0], -1, heads, hd).transpose(1, 2)
        k = (y @ wk.T + bk).reshape(y.shape[0], -1, heads, hd).transpose(1, 2)
        probs = torch.softmax(q @ k.transpose(-2, -1) / hd ** 0.5, dim=-1)  # (BT, heads, N, N)
        cls_row = probs[:, :, 0, vit.num_prefix_tokens:].mean(dim=1)
    return cls_row.reshape(b, t, -1)


@pytest.mark.parametrize("reg_tokens", [0, 2])
def test_cls_attention_matches_manual_computation(reg_tokens):
    vit = tiny_vit(reg_tokens=reg_tokens)
    assert vit.num_prefix_tokens == 1 + reg_tokens
    frames = torch.randn(2, 3, 3, 32, 32)
    got = cls_attention(vit, frames)
    assert got.shape == (2, 3, 16) and got.dtype == torch.float32
    torch.testing.assert_close(got, manual_cls_attention(vit, frames), rtol=1e-5, atol=1e-6)
    assert bool((got >= 0).all())
    sums = got.sum(-1)
    assert bool((sums <= 1 + 1e-6).all()) and bool((sums > 0).all())
    # chunked teacher forwards give the same scores; the hook is removed afterwards
    torch.testing.assert_close(cls_attention(vit, frames, batch_size=4), got)
    assert not vit.blocks[-1].attn._forward_pre_hooks


def test_cls_attention_matches_timm_explicit_softmax():
    """Against timm's own (non-fused) attention probabilities, taken from its attn_drop input."""
    vit = tiny_vit()
    attn = vit.blocks[-1].attn
    attn.fused_attn = False
    seen = []
    handle = attn.attn_drop.register_forward_hook(lambda m, i, o: seen.append(o))
    frames = torch.rand(1, 3, 2, 32, 32)
    with torch.no_grad():
        vit(frames.permute(0, 2, 1, 3, 4).reshape(2, 3, 32, 32))
    handle.remove()
    ref = seen[0][:, :, 0, 1:].mean(dim=1).reshape(1, 2, 16)
    torch.testing.assert_close(cls_attention(vit, frames), ref, rtol=1e-5, atol=1e-6)


def test_grey_frames_and_errors():
    vit = tiny_vit()
    grey = torch.rand(1, 1, 2, 32, 32)
    torch.testing.assert_close(cls_attention(vit, grey), cls_attention(vit, grey.expand(-1, 3, -1, -1, -1)))
    with pytest.raises(ValueError, match="channels"):
        cls_attention(vit, torch.rand(1, 2, 2, 32, 32))
    with pytest.raises(ValueError, match="B, C, T, H, W"):
        cls_attention(vit, torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="class token"):
        cls_attention(tiny_vit(class_token=False, global_pool="avg"), grey)


def test_attention_guided_mask_on_teacher_scores_keeps_exact_count_per_frame():
    vit = tiny_vit()
    scores = cls_attention(vit, torch.rand(2, 3, 4, 32, 32))  # (B, T, 16)
    g = torch.Generator().manual_seed(0)
    mask = attention_guided_mask(scores, 0.8, generator=g)
    assert mask.shape == (2, 4 * 16) and mask.dtype == torch.bool
    visible = (~mask).reshape(2, 4, 16).sum(-1)
    assert bool((visible == 16 - int(0.8 * 16)).all())  # 4 of 16 visible in every frame
