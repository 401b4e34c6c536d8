"""Frozen teachers of masked distillation (snappix.teachers): small random teachers, CPU, no network.

A tiny random CLIP-style timm ViT saved in timm's layout and in the OpenAI / open_clip layout (written by
a reverse key map here) loads through build_teacher to the same outputs; attention / target shapes, ranges
and values against manual computations; freezing; load errors; the snappix video-ViT teacher; the single
pass against cls_attention.
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from snappix.models.factory import classifier_from_flags
from snappix.models.teacher_attention import (attention_scores, cls_attention, forward_with_attention,
                                              vit_attention_and_tokens)
from snappix.teachers import FrozenTeacher, TeacherLoadError, TeacherOutput, build_teacher

torch.set_num_threads(1)

CLIP = "vit_base_patch16_clip_quickgelu_224"
TINY = dict(depth=2, embed_dim=64, num_heads=2, patch_size=8, num_classes=16)  # 32 px -> 4 x 4 patches
IMG, FRAMES = 32, 3
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def tiny_clip() -> nn.Module:
    """A random CLIP-style ViT (QuickGELU, pre-norm, projection head without bias, as CLIP's ``proj``)."""
    torch.manual_seed(0)
    vit = timm.create_model(CLIP, pretrained=False, img_size=IMG, **TINY).eval()
    with torch.no_grad():
        for p in vit.parameters():  # move LayerNorms, cls token, biases away from their trivial init
            p.add_(0.05 * torch.randn_like(p))
        vit.head.bias.zero_()
    return vit


def to_open_clip(sd: dict, prefix: str = "visual.") -> dict:
    """timm ViT keys -> OpenAI / open_clip visual-tower keys (the reverse of timm's conversion)."""
    blocks = [("norm1", "ln_1"), ("attn.qkv.weight", "attn.in_proj_weight"), ("attn.qkv.bias", "attn.in_proj_bias"),
              ("attn.proj", "attn.out_proj"), ("norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")]
    out = {}
    for k, v in sd.items():
        if k == "patch_embed.proj.weight":
            k = "conv1.weight"
        elif k == "cls_token":
            k, v = "class_embedding", v.reshape(-1)
        elif k == "pos_embed":
            k, v = "positional_embedding", v[0]
        elif k.startswith("norm_pre."):
            k = k.replace("norm_pre.", "ln_pre.")
        elif k.startswith("norm."):
            k = k.replace("norm.", "ln_post.")
        elif k == "head.weight":
            k, v = "proj", v.t().contiguous()
        elif k == "head.bias":
            assert not v.any(), "CLIP's proj has no bias"
            continue
        elif k.startswith("blocks."):
            k = k.replace("blocks.", "transformer.resblocks.", 1)
            for a, b in blocks:
                k = k.replace(a, b)
        else:
            raise AssertionError(f"unmapped key {k}")
        out[prefix + k] = v.clone()
    return out


TEXT_KEYS = {  # a whole-CLIP file also holds the text tower: ignored
    "token_embedding.weight": torch.randn(10, 32), "positional_embedding": torch.randn(7, 32),
    "transformer.resblocks.0.attn.in_proj_weight": torch.randn(96, 32), "ln_final.weight": torch.ones(32),
    "text_projection": torch.randn(32, 16), "logit_scale": torch.tensor(4.6),
}


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """The tiny CLIP as timm layout, whole-CLIP open_clip layout, and bare visual tower (no prefix)."""
    tmp = tmp_path_factory.mktemp("teachers")
    vit = tiny_clip()
    sd = vit.state_dict()
    files = {"timm": tmp / "timm.pth", "open_clip": tmp / "open_clip.bin", "bare": tmp / "visual.pt"}
    torch.save(sd, files["timm"])
    torch.save({**to_open_clip(sd), **TEXT_KEYS}, files["open_clip"])
    torch.save({"state_dict": to_open_clip(sd, prefix="")}, files["bare"])
    return vit, files


def clip_teacher(path, **kwargs) -> FrozenTeacher:
    return build_teacher(CLIP, path, img_size=IMG, num_frames=FRAMES, **{**TINY, **kwargs})


def normalised_frames(video: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) in [0, 1] -> (B, 3, T, H, W) with CLIP's statistics (grey repeated)."""
    x = video.expand(-1, 3, -1, -1, -1)
    mean, std = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1, 1), torch.tensor(OPENAI_STD).view(1, 3, 1, 1, 1)
    return (x - mean) / std


def test_timm_and_open_clip_layouts_give_identical_outputs(clip_files):
    _, files = clip_files
    video = torch.rand(2, 1, FRAMES, IMG, IMG)
    outs = {name: clip_teacher(path)(video) for name, path in files.items()}
    ref = outs["timm"]
    assert isinstance(ref, TeacherOutput)
    for name in ("open_clip", "bare"):
        torch.testing.assert_close(outs[name].attention, ref.attention, rtol=0, atol=0)
        torch.testing.assert_close(outs[name].targets, ref.targets, rtol=0, atol=0)


def test_image_teacher_outputs_match_manual_computation(clip_files):
    vit, files = clip_files
    teacher = clip_teacher(files["open_clip"])
    assert teacher.grid == (FRAMES, 4, 4) and teacher.dim == 16
    video = torch.rand(2, 1, FRAMES, IMG, IMG)
    out = teacher(video)
    assert out.attention.shape == (2, FRAMES, 16) and out.attention.dtype == torch.float32
    assert out.targets.shape == (2, 1 + FRAMES * 16, 16) and out.targets.dtype == torch.float32
    assert bool((out.attention >= 0).all()) and bool((out.attention.sum(-1) <= 1 + 1e-6).all())
    torch.testing.assert_close(out.targets.norm(dim=-1), torch.ones(2, 1 + FRAMES * 16))
    frames = normalised_frames(video)
    torch.testing.assert_close(out.attention, cls_attention(vit, frames), rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # final norm (ln_post) and projection on every token; CLS averaged over frames
        feats = vit.head(vit.forward_features(frames.permute(0, 2, 1, 3, 4).reshape(2 * FRAMES, 3, IMG, IMG)))
    cls = F.normalize(feats[:, 0].reshape(2, FRAMES, 16).mean(dim=1), dim=-1)
    patches = F.normalize(feats[:, 1:].reshape(2, FRAMES * 16, 16), dim=-1)
    torch.testing.assert_close(out.targets[:, 0], cls, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.targets[:, 1:], patches, rtol=1e-5, atol=1e-6)


def test_chunks_rgb_and_autocast(clip_files):
    _, files = clip_files
    video = torch.rand(2, 1, FRAMES, IMG, IMG)
    whole = clip_teacher(files["timm"])(video)
    chunked = clip_teacher(files["timm"], chunk=4)(video)
    torch.testing.assert_close(chunked.targets, whole.targets, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.attention, whole.attention, rtol=1e-5, atol=1e-6)
    rgb = clip_teacher(files["timm"], in_chans=3)(video.expand(-1, 3, -1, -1, -1))
    torch.testing.assert_close(rgb.targets, whole.targets)
    teacher = clip_teacher(files["timm"])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = teacher(video)
    assert half.attention.dtype == torch.float32 and half.targets.dtype == torch.float32
    torch.testing.assert_close(half.attention, whole.attention, rtol=0.1, atol=0.02)
    with pytest.raises(ValueError, match="expects a clip"):
        teacher(torch.rand(2, 1, FRAMES + 1, IMG, IMG))


def test_teacher_is_frozen_and_never_gets_gradients(clip_files):
    _, files = clip_files
    teacher = clip_teacher(files["timm"])
    assert all(not p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training and not any(m.training for m in teacher.modules())
    student = nn.Linear(16, 16)
    out = teacher(torch.rand(2, 1, FRAMES, IMG, IMG))
    assert not out.targets.requires_grad and not out.attention.requires_grad
    pred = student(torch.randn(2, out.targets.shape[1], 16))
    loss = (1 - F.cosine_similarity(pred, out.targets, dim=-1)).mean()
    loss.backward()
    assert student.weight.grad is not None
    assert all(p.grad is None for p in teacher.parameters())


def test_load_errors_name_file_and_keys(clip_files, tmp_path):
    vit, files = clip_files
    sd = vit.state_dict()
    sd.pop("blocks.1.attn.qkv.weight")
    sd["extra.weight"] = torch.zeros(2)
    bad = tmp_path / "partial.pth"
    torch.save(sd, bad)
    with pytest.raises(TeacherLoadError, match=r"partial\.pth.*missing keys: blocks\.1\.attn\.qkv\.weight") as e:
        clip_teacher(bad)
    assert "unexpected keys: extra.weight" in str(e.value)
    oc = to_open_clip(vit.state_dict())
    oc.pop("visual.transformer.resblocks.0.ln_1.weight")
    torch.save(oc, tmp_path / "oc.bin")
    with pytest.raises(TeacherLoadError, match=r"oc\.bin.*missing keys: blocks\.0\.norm1\.weight"):
        clip_teacher(tmp_path / "oc.bin")
    with pytest.raises(TeacherLoadError, match=r"nowhere\.pth.*does not exist"):
        clip_teacher(tmp_path / "nowhere.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TeacherLoadError, match=r"cannot read.*junk\.pth"):
        clip_teacher(tmp_path / "junk.pth")
    with pytest.raises(TeacherLoadError, match="unknown teacher"):
        build_teacher("vit_nonexistent_clip_224", files["timm"], img_size=IMG, num_frames=FRAMES)
    with pytest.raises(TeacherLoadError, match="class token"):
        clip_teacher(files["timm"], class_token=False, global_pool="avg")
    with pytest.raises(TeacherLoadError, match="not a timm VisionTransformer"):
        build_teacher("video_vit_super_tiny_patch16_112", files["timm"], img_size=IMG, num_frames=8)
    assert issubclass(TeacherLoadError, ValueError)


def test_torchscript_archive_loads(clip_files, tmp_path):
    """OpenAI's released ViT-B-16.pt is a TorchScript archive, which torch.load(weights_only=True) refuses."""
    vit, files = clip_files
    root = nn.Module()
    for key, value in to_open_clip(vit.state_dict()).items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, nn.Parameter(value))
    torch.jit.save(torch.jit.script(root), str(tmp_path / "ViT-B-16.pt"))
    video = torch.rand(1, 1, FRAMES, IMG, IMG)
    torch.testing.assert_close(clip_teacher(tmp_path / "ViT-B-16.pt")(video).targets,
                               clip_teacher(files["timm"])(video).targets, rtol=0, atol=0)


def test_single_pass_matches_cls_attention_and_runs_once():
    vit = tiny_clip()
    frames = torch.randn(4, 3, IMG, IMG)
    calls = []
    vit.blocks[-1].mlp.register_forward_hook(lambda m, i, o: calls.append(1))
    attn, tokens = vit_attention_and_tokens(vit, frames)
    assert len(calls) == 1 and not vit.blocks[-1].attn._forward_pre_hooks  # whole network, once; hook removed
    torch.testing.assert_close(attn, cls_attention(vit, frames.unsqueeze(2)).squeeze(1), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(tokens, vit.forward_features(frames))


# ------------------------------------------------------------------------------------------- snappix teacher
SNAPPIX_CONFIG = {"model": "video_vit_super_tiny_patch16_112", "input_size": 32, "num_frames": 8, "in_chans": 1,
                  "drop_path": 0.1, "nb_classes": 5}  # patch 16, tubelet 4 -> grid (2, 2, 2)


@pytest.fixture(scope="module")
def snappix_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    clf = classifier_from_flags(SNAPPIX_CONFIG, 5).eval()
    with torch.no_grad():
        for p in clf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path_factory.mktemp("snappix") / "checkpoint-best.pth"
    torch.save({"model": clf.state_dict(), "config": dict(SNAPPIX_CONFIG), "epoch": 3}, path)
    return clf, path


def manual_received_attention(clf, video):
    """Last block: softmax(q k^T / sqrt(d)) written out with the q / v biases; column mean over queries, heads."""
    seen = []
    handle = clf.blocks[-1].attn.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        clf.forward_tokens(video)
    handle.remove()
    attn, x = clf.blocks[-1].attn, seen[0]
    bias = torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
    q, k, _ = F.linear(x, attn.qkv.weight, bias).reshape(x.shape[0], x.shape[1], 3, attn.num_heads, -1) \
        .permute(2, 0, 3, 1, 4)
    probs = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)  # (B, heads, N, N)
    return probs.mean(dim=(1, 2))


def test_snappix_teacher(snappix_checkpoint):
    clf, path = snappix_checkpoint
    teacher = build_teacher("snappix", path, img_size=32, num_frames=8, in_chans=1, chunk=1)
    assert teacher.grid == clf.grid == (2, 2, 2) and teacher.dim == 128
    assert all(not p.requires_grad for p in teacher.parameters())
    video = torch.rand(3, 1, 8, 32, 32)
    out = teacher(video)
    assert out.attention.shape == (3, 2, 4) and out.targets.shape == (3, 1 + 8, 128)
    torch.testing.assert_close(out.attention.sum(dim=(1, 2)), torch.ones(3))
    torch.testing.assert_close(out.attention.reshape(3, 8), manual_received_attention(clf, video),
                               rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        tokens = clf.forward_tokens(video)
        pooled = clf.forward_head(tokens, pre_logits=True)
        torch.testing.assert_close(out.targets[:, 0], F.normalize(pooled, dim=-1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.targets[:, 1:], F.normalize(clf.fc_norm(tokens), dim=-1),
                                   rtol=1e-5, atol=1e-6)


def test_snappix_teacher_errors(snappix_checkpoint, tmp_path):
    clf, path = snappix_checkpoint
    with pytest.raises(TeacherLoadError, match=r"trained on clips of 8 frames x 32 px.*16 frames x 32 px"):
        build_teacher("snappix", path, img_size=32, num_frames=16)
    with pytest.raises(TeacherLoadError, match=r"8 frames x 48 px"):
        build_teacher("snappix", path, img_size=48, num_frames=8)
    torch.save(clf.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(TeacherLoadError, match="not a snappix finetuning checkpoint"):
        build_teacher("snappix", tmp_path / "bare.pth", img_size=32, num_frames=8)
    sd = clf.state_dict()
    sd.pop("fc_norm.bias")
    torch.save({"model": sd, "config": SNAPPIX_CONFIG}, tmp_path / "partial.pth")
    with pytest.raises(TeacherLoadError, match=r"partial\.pth.*missing keys: fc_norm\.bias"):
        build_teacher("snappix", tmp_path / "partial.pth", img_size=32, num_frames=8)
    torch.save({"model": clf.state_dict(), "config": {**SNAPPIX_CONFIG, "model": "video_vit_nope"}},
               tmp_path / "unknown.pth")
    with pytest.raises(TeacherLoadError, match="cannot rebuild the classifier"):
        build_teacher("snappix", tmp_path / "unknown.pth", img_size=32, num_frames=8)


def test_attention_scores_mean_mode_is_chunk_invariant():
    clf = classifier_from_flags(SNAPPIX_CONFIG, 5).eval()
    x = torch.randn(2, 8, 128)
    attn = clf.blocks[-1].attn
    torch.testing.assert_close(attention_scores(attn, x, "mean", query_chunk=3),
                               attention_scores(attn, x, "mean", query_chunk=1000))
    scores, out = forward_with_attention(attn, lambda: attn(x), query="cls")
    assert scores.shape == (2, 8) and out.shape == (2, 8, 128)
    torch.testing.assert_close(scores.sum(-1), torch.ones(2))
    with pytest.raises(TypeError, match="2 times"):
        forward_with_attention(attn, lambda: attn(attn(x)))
