"""SaViMAE saliency: the per-frame formula, patch pooling, alignment with the sampled frames, tubelets and
crop, exact mask counts of both semantics, the precompute tool (resumable) and dataset wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import synthetic_frames, write_lossless_video
from snappix.data import sampling
from snappix.data.datasets import VideoPretrainDataset
from snappix.data.lists import write_list
from snappix.masking.saliency import (MissingSaliencyError, OnlineSaliency, PrecomputedSaliency,
                                      SaliencyMaskGenerator, SaliencyMasking, align_saliency,
                                      build_saliency_mask_generator, crop_patch_map, frame_saliency,
                                      patch_saliency, saliency_path, tubelet_pool)
from snappix.tools import saliency as tool


def test_frame_saliency_formula_per_frame():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    frames[2] = 77  # constant frame: zero saliency, no division by zero
    sal = frame_saliency(frames, input_size=None).numpy()
    for t in range(2):
        i = frames[t].astype(np.float64) / 255
        ref = np.abs(i - i.mean()) / np.abs(i - i.mean()).max()
        np.testing.assert_allclose(sal[t], ref, atol=1e-5)
    assert (sal[2] == 0).all()
    rgb = rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    out = frame_saliency(rgb, input_size=32)
    assert out.shape == (2, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and np.allclose(out.amax(dim=(1, 2)).numpy(), 1.0)


def test_patch_saliency_is_any_pixel_above_threshold():
    sal = torch.zeros(2, 16, 16)
    sal[0, 5, 9] = 0.5  # one pixel at the threshold -> its 8x8 patch (0, 1) is salient
    sal[1, 15, 0] = 0.49
    p = patch_saliency(sal, 8, 0.5)
    assert p.shape == (2, 2, 2)
    assert p[0].tolist() == [[0.0, 1.0], [0.0, 0.0]] and p[1].sum() == 0


def test_alignment_with_sampled_frames_and_tubelets():
    # video map: frame f has only patch (f % 4, f // 4) salient, so each frame is identifiable
    t_video = 16
    vmap = np.zeros((t_video, 4, 4), dtype=np.float32)
    for f in range(t_video):
        vmap[f, f % 4, f // 4] = 1
    idx = np.array([3, 5, 10, 11])
    tok = align_saliency(vmap, idx, tubelet_size=2, reduce="max")
    assert tok.shape == (2, 4, 4)
    assert {tuple(x) for x in torch.nonzero(tok[0]).tolist()} == {(3, 0), (1, 1)}  # frames 3 and 5, max-pooled
    assert {tuple(x) for x in torch.nonzero(tok[1]).tolist()} == {(2, 2), (3, 2)}  # frames 10 and 11
    mean = align_saliency(vmap, idx, tubelet_size=2, reduce="mean")
    assert float(mean.max()) == 0.5
    with pytest.raises(IndexError):
        align_saliency(vmap, [0, 16], 2)
    with pytest.raises(ValueError):
        tubelet_pool(vmap[:3], 2)


def test_crop_mapping():
    m = torch.zeros(1, 4, 4)
    m[0, 0, 0] = 1  # top-left cell of the full frame
    same = crop_patch_map(m, (0, 0, 80, 80), (80, 80), (4, 4))
    assert torch.equal(same, m)
    # crop the top-left quarter (40x40 px) -> the salient cell covers the top-left 2x2 output cells
    quarter = crop_patch_map(m, (0, 0, 40, 40), (80, 80), (4, 4))
    assert quarter[0].tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # crop the bottom-right quarter -> nothing salient
    assert crop_patch_map(m, (40, 40, 40, 40), (80, 80), (4, 4)).sum() == 0


@pytest.mark.parametrize("semantics", ["per_group", "budget"])
def test_exact_masked_count_for_any_saliency(semantics):
    grid = (8, 14, 14)
    gen = SaliencyMasking(grid, 0.85, 0.95, semantics, mask_ratio=0.9)
    rng = np.random.default_rng(0)
    expected = int(0.95 * 1568) if semantics == "budget" else int(0.9 * 1568)
    for frac in (0.0, 0.02, 0.3, 0.8, 1.0):
        sal = (rng.random(grid) < frac).astype(np.float32)
        mask = gen(sal, rng)
        assert mask.dtype == bool and mask.shape == (1568,) and int(mask.sum()) == expected == gen.num_masked


def test_budget_semantics_follow_savimae_training_code():
    grid = (8, 14, 14)
    gen = SaliencyMasking(grid, 0.85, 0.95, "budget")
    sal = np.zeros(1568, dtype=np.float32)
    sal[:300] = 1  # fewer salient tokens than K_s = int(0.85 * 1489) = 1265 -> all salient hidden
    mask = gen(sal, np.random.default_rng(1))
    assert mask.sum() == 1489 and mask[:300].all()
    sal = np.ones(1568, dtype=np.float32)
    sal[:300] = 0  # both groups large enough: exactly K_ns = 1489 - 1265 = 224 non-salient hidden
    mask = gen(sal, np.random.default_rng(1))
    assert mask[:300].sum() == 224 and mask[300:].sum() == 1265


def test_per_group_semantics_hide_salient_tokens_less():
    grid = (8, 14, 14)
    gen = SaliencyMasking(grid, 0.5, 0.95, "per_group", mask_ratio=0.8)
    sal = np.zeros(1568, dtype=np.float32)
    sal[:784] = 1
    mask = gen(sal, np.random.default_rng(2))
    vis_s, vis_ns = (~mask[:784]).sum(), (~mask[784:]).sum()
    assert vis_s + vis_ns == 1568 - int(0.8 * 1568)
    assert vis_s / vis_ns == pytest.approx(0.5 / 0.05, rel=0.05)  # keep rates (1 - r_s) : (1 - r_ns)


def test_generator_requires_clip_and_online_matches_clip():
    grid = (2, 4, 4)
    gen = build_saliency_mask_generator("savi", grid, patch_size=8, tubelet_size=2, saliency="online",
                                        mask_ratio=0.5, semantics="per_group")
    with pytest.raises(TypeError):
        gen(np.random.default_rng(0))
    video = torch.zeros(1, 4, 32, 32)
    video[:, :, :8, :8] = 1.0  # only the top-left patch is salient in every frame
    tok = OnlineSaliency(8, 2)({"video": video})
    assert tok.shape == grid and tok.sum() == 2 and tok[:, 0, 0].tolist() == [1, 1]
    assert gen(np.random.default_rng(0), clip={"video": video}).sum() == 16


@pytest.fixture()
def saliency_tree(tmp_path):
    root = tmp_path / "videos"
    (root / "cls").mkdir(parents=True)
    frames = synthetic_frames(40, 48, 64, seed=3)
    frames[:, :, :, :] = frames[:, :, :, :] // 8  # dark noise ...
    frames[20:, 8:24, 8:24] = 255  # ... with a bright square from frame 20 on
    write_lossless_video(root / "cls" / "a.mp4", frames)
    return root, frames


def test_tool_writes_mirrored_arrays_and_resumes(saliency_tree, tmp_path, capsys):
    root, frames = saliency_tree
    out = tmp_path / "sal"
    args = ["--video_root", str(root), "--out_root", str(out), "--input_size", "32", "--patch_size", "8",
            "--num_workers", "1", "--chunk_frames", "16"]
    assert tool.main(args) == 0
    arr = np.load(saliency_path(str(out), "cls/a.mp4"))
    assert arr.shape == (40, 4, 4) and arr.dtype == np.float32 and set(np.unique(arr)) <= {0.0, 1.0}
    ref = patch_saliency(frame_saliency(frames, 32), 8).numpy()
    np.testing.assert_array_equal(arr, ref)
    assert tool.main(args) == 0
    assert "0 written (0 frames), 1 already done" in capsys.readouterr().out


def test_dataset_aligns_precomputed_saliency_with_sampled_frames(saliency_tree, tmp_path):
    root, _ = saliency_tree
    out = tmp_path / "sal"
    assert tool.main(["--video_root", str(root), "--out_root", str(out), "--input_size", "32", "--patch_size", "8",
                      "--num_workers", "1"]) == 0
    write_list(tmp_path / "pre.csv", [("cls/a.mp4", 0, -1)], "pretrain")
    grid = (4, 4, 4)
    seen = []

    class Recording(PrecomputedSaliency):
        def __call__(self, context):
            seen.append(context)
            return super().__call__(context)

    gen = SaliencyMaskGenerator(Recording(str(out), grid, 2), SaliencyMasking(grid, 0.5, 0.9, "budget"))
    ds = VideoPretrainDataset(str(tmp_path / "pre.csv"), str(root), num_frames=8, sampling_rate=4, input_size=32,
                              encoder_mask=gen, train=False, scales=(1,), log_dir=str(tmp_path))
    sample = ds[0]
    assert sample["encoder_mask"].sum() == int(0.9 * 64)
    expected = sampling.snappix_pretrain_indices(40, 8, 4, train=False)
    np.testing.assert_array_equal(seen[0]["frame_indices"], expected)
    full = np.load(saliency_path(str(out), "cls/a.mp4"))
    crop = seen[0]["crop"]
    assert seen[0]["frame_size"] == (48, 64) and crop[2:] == (48, 48)  # scale 1: a 48x48 square of 48x64
    tok = Recording(str(out), grid, 2)(seen[0])
    ref = align_saliency(full, expected, 2, crop=crop, frame_size=(48, 64), out_hw=(4, 4))
    assert torch.equal(tok, ref)
    # the bright square is there from frame 20: the tokens of later sampled frames see it
    later = [i // 2 for i, f in enumerate(expected) if f >= 20]
    assert all(tok[t].sum() > 0 for t in later)


def test_missing_saliency_file_stops_instead_of_falling_back(saliency_tree, tmp_path):
    root, _ = saliency_tree
    (tmp_path / "empty").mkdir()
    write_list(tmp_path / "pre.csv", [("cls/a.mp4", 0, -1)], "pretrain")
    gen = SaliencyMaskGenerator(PrecomputedSaliency(str(tmp_path / "empty"), (4, 4, 4), 2),
                                SaliencyMasking((4, 4, 4), 0.5, 0.9, "budget"))
    ds = VideoPretrainDataset(str(tmp_path / "pre.csv"), str(root), num_frames=8, sampling_rate=4, input_size=32,
                              encoder_mask=gen, train=False, log_dir=str(tmp_path))
    with pytest.raises(MissingSaliencyError, match="a.mp4.npy"):
        ds[0]
    with pytest.raises(MissingSaliencyError):
        PrecomputedSaliency(str(tmp_path / "nope"), (4, 4, 4), 2)


def test_real_clip_saliency(videos_dir):
    path = videos_dir / "rawvideo_dataset_part_0.mp4"
    if not path.exists():
        pytest.skip(f"{path} not present")
    arr = tool.video_patch_saliency(str(path), 112, 8, 0.5, chunk_frames=16)
    assert arr.ndim == 3 and arr.shape[1:] == (14, 14) and arr.shape[0] > 0
    assert 0 < arr.mean() < 1
