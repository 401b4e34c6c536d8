"""K-center token selection as the encoder mask of masked pretraining (``--mask_type kcenter``):
exact hidden count, equality with a brute-force greedy k-center on hand-built points, seeded
reproducibility, the dataset's ``gen(rng, clip=context)`` convention, both MAE models, a tiny run."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, brute_force_kcenter, synthetic_frames, write_lossless_video
from snappix.data.datasets import VideoPretrainDataset
from snappix.data.lists import write_list
from snappix.masking.kcenter import kcenter_select
from snappix.masking.kcenter_masking import KCenterMaskGenerator

torch.set_num_threads(1)


def hand_points(video: np.ndarray, grid, temporal_coef=1.0, spatial_coef=1.0) -> np.ndarray:
    """(N, D + 3) points built token by token: pixels (x - 0.5) / 0.5 of the tubelet, then (t, h, w)."""
    c, t, s, _ = video.shape
    gt, gh, gw = grid
    tub, p = t // gt, s // gh
    r_t = math.sqrt(p) * 2.0 * temporal_coef  # spec §3 with rgb_range = 2, P = p
    r_s = math.sqrt(p / 2) * 2.0 * spatial_coef
    ts = np.linspace(-r_t / 2, r_t / 2, gt) if gt > 1 else np.zeros(1)
    hs = np.linspace(-r_s / 2, r_s / 2, gh)
    rows = []
    for i in range(gt):
        for j in range(gh):
            for k in range(gw):
                pix = video[:, i * tub:(i + 1) * tub, j * p:(j + 1) * p, k * p:(k + 1) * p].reshape(-1)
                rows.append(np.concatenate([(pix - 0.5) / 0.5, [ts[i], hs[j], hs[k]]]))
    return np.asarray(rows, dtype=np.float64)


CASES = [  # grid, mask_ratio, time_division, space_division, temporal_coef, spatial_coef, tube
    ((2, 4, 4), 0.75, 1, 1, 1.0, 1.0, False),
    ((2, 4, 4), 0.75, 2, 2, 3.0, 0.5, False),
    ((4, 4, 4), 0.6, 2, 1, 1.0, 2.0, False),
    ((2, 4, 4), 0.5, 1, 1, 1.0, 1.0, True),
]


@pytest.mark.parametrize("grid,ratio,td,sd,tc,sc,tube", CASES)
def test_visible_set_is_brute_force_kcenter_on_hand_built_points(grid, ratio, td, sd, tc, sc, tube):
    video = np.random.default_rng(1).random((3, 4, 16, 16))  # (C, T, S, S) in [0, 1]; p = 16 / H'
    gen = KCenterMaskGenerator(grid, ratio, td, sd, tc, sc, "random", tube=tube)
    mask = gen(np.random.default_rng(7), clip={"video": torch.from_numpy(video).float()})
    n = grid[0] * grid[1] * grid[2]
    assert mask.dtype == np.bool_ and mask.shape == (n,)
    per = grid[1] * grid[2]
    expected_hidden = int(ratio * per) * grid[0] if tube else int(ratio * n)
    assert mask.sum() == gen.num_masked == expected_hidden

    sel_grid = (1, grid[1], grid[2]) if tube else grid
    pts = hand_points(video, sel_grid, tc, sc)
    k = (per if tube else n) - (int(ratio * per) if tube else int(ratio * n))
    firsts = np.random.default_rng(7).integers(0, len(pts) // td, size=td)  # what the generator draws
    oracle = brute_force_kcenter(pts, sel_grid, k, firsts, td, sd)
    got = gen.select(torch.from_numpy(video).float(), np.random.default_rng(7)).tolist()
    assert got == oracle  # same centres in the same order
    ref = kcenter_select(torch.from_numpy(pts).float()[None], k, td, sd, first=torch.from_numpy(firsts),
                         grid=sel_grid)[0].tolist()
    assert ref == oracle
    visible = np.zeros(per if tube else n, dtype=bool)
    visible[oracle] = True
    expected = ~np.tile(visible, grid[0]) if tube else ~visible
    np.testing.assert_array_equal(mask, expected)


def test_same_seed_same_mask_other_seed_other_first_centre():
    video = torch.rand(1, 8, 32, 32)
    gen = KCenterMaskGenerator((4, 4, 4), 0.9)
    a = gen(np.random.default_rng(3), clip={"video": video})
    b = gen(np.random.default_rng(3), clip={"video": video})
    np.testing.assert_array_equal(a, b)
    firsts = {int(gen.select(video, np.random.default_rng(s))[0]) for s in range(6)}
    assert len(firsts) > 1  # the first centre comes from the rng (6 seeds, 64 tokens)
    assert firsts == {int(np.random.default_rng(s).integers(0, 64)) for s in range(6)}
    masks = {gen(np.random.default_rng(s), clip={"video": video}).tobytes() for s in range(6)}
    assert len(masks) > 1
    # "center": deterministic, the rng is not consumed
    c = KCenterMaskGenerator((4, 4, 4), 0.9, first_center="center")
    rng = np.random.default_rng(0)
    m1, m2 = c(rng, clip={"video": video}), c(np.random.default_rng(1), clip={"video": video})
    np.testing.assert_array_equal(m1, m2)
    assert rng.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)
    assert int(c.select(video)[0]) == 2 * 16 + 2 * 4 + 2  # middle slot, centre patch


def test_errors_name_the_flag_and_missing_clip():
    with pytest.raises(ValueError, match="--kcenter_time_division 3"):
        KCenterMaskGenerator((4, 4, 4), 0.9, time_division=3)  # 3 does not divide 4 slots
    with pytest.raises(ValueError, match="--kcenter_time_division 4 must divide the 7 visible"):
        KCenterMaskGenerator((4, 4, 4), 0.9, time_division=4)  # k = 64 - 57 = 7
    with pytest.raises(ValueError, match="--kcenter_time_division 2 .*tube"):
        KCenterMaskGenerator((4, 4, 4), 0.5, time_division=2, tube=True)
    with pytest.raises(ValueError, match="--kcenter_space_division 5"):
        KCenterMaskGenerator((4, 4, 4), 0.5, space_division=5)
    with pytest.raises(ValueError, match="--kcenter_space_division 2 allows at most 4"):
        KCenterMaskGenerator((4, 4, 4), 0.5, space_division=2)
    with pytest.raises(ValueError, match="--kcenter_first_center"):
        KCenterMaskGenerator((4, 4, 4), 0.5, first_center="middle")
    with pytest.raises(ValueError, match="--mask_ratio"):
        KCenterMaskGenerator((4, 4, 4), 1.0)
    gen = KCenterMaskGenerator((4, 4, 4), 0.5)
    with pytest.raises(TypeError, match="sampled clip"):
        gen(np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not tile"):
        gen(np.random.default_rng(0), clip={"video": torch.rand(1, 8, 30, 30)})


def test_dataset_calls_generator_with_the_transformed_clip(tmp_path):
    write_lossless_video(tmp_path / "a.mp4", synthetic_frames(40, 48, 64, seed=2))
    write_list(tmp_path / "pre.csv", [("a.mp4", 0, -1)], "pretrain")
    seen = []

    class Recording(KCenterMaskGenerator):
        def __call__(self, rng=None, clip=None):
            seen.append((rng.bit_generator.state, clip["video"].clone()))
            return super().__call__(rng, clip)

    grid = (4, 4, 4)
    gen = Recording(grid, 0.75, time_division=2)
    ds = VideoPretrainDataset(str(tmp_path / "pre.csv"), str(tmp_path), num_frames=8, sampling_rate=4,
                              input_size=32, encoder_mask=gen, train=True, log_dir=str(tmp_path))
    first, again = ds[0], ds[0]
    mask = first["encoder_mask"]
    assert mask.dtype == torch.bool and mask.shape == (64,) and int(mask.sum()) == 48
    assert torch.equal(mask, again["encoder_mask"])  # the per-item seeded rng reproduces the mask
    state, video = seen[0]
    assert video.shape == (1, 8, 32, 32) and 0.0 <= float(video.min()) and float(video.max()) <= 1.0
    assert torch.equal(video, first["video"])
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    np.testing.assert_array_equal(KCenterMaskGenerator(grid, 0.75, time_division=2)(rng, clip={"video": video}),
                                  mask.numpy())


def test_masks_fit_both_pretraining_models():
    import timm

    import snappix.models  # noqa: F401

    video = torch.rand(2, 1, 4, 32, 32)
    mae = timm.create_model("pretrain_videomae_super_tiny_patch8_112", img_size=32, num_frames=4, decoder_depth=1)
    coded = timm.create_model("pretrain_coded_videomae_super_tiny_patch8_112", img_size=32, num_frames=4,
                              decoder_depth=1, coded_type="naive_learned")
    for model, tube in ((mae, False), (coded, True)):
        assert tuple(model.grid) == (2, 4, 4)
        gen = KCenterMaskGenerator(model.grid, 0.75, tube=tube)
        masks = torch.stack([torch.from_numpy(gen(np.random.default_rng(i), clip={"video": v}))
                             for i, v in enumerate(video)])
        with torch.no_grad():
            out = model(video, masks)
        assert torch.isfinite(out["pred"]).all()
    # a per-token k-center mask differs between the slots: the coded model refuses it (hence tube=True)
    gen = KCenterMaskGenerator(coded.grid, 0.75)
    masks = torch.stack([torch.from_numpy(gen(np.random.default_rng(0), clip={"video": v})) for v in video])
    assert bool((masks.reshape(2, 2, 16) != masks.reshape(2, 2, 16)[:, :1]).any())
    with pytest.raises(ValueError, match="tube"):
        coded(video, masks)


def test_tiny_coded_pretraining_run_with_kcenter_masks(tmp_path):
    from snappix.data.synthetic import render_clip
    from snappix.data.video_writer import write_video

    rng = np.random.default_rng(0)
    for i in range(4):
        write_video(str(tmp_path / f"c{i}.mp4"), render_clip(i, 12, 40, 48, rng=rng))
    write_list(tmp_path / "train.csv", [(f"c{i}.mp4", 0, -1) for i in range(4)], "pretrain")
    out = tmp_path / "run"
    args = ["--model", "pretrain_coded_videomae_super_tiny_patch8_112", "--coded_type", "naive_learned",
            "--input_size", "32", "--num_frames", "4", "--sampling_rate", "2", "--mask_ratio", "0.75",
            "--mask_type", "kcenter", "--kcenter_first_center", "random", "--kcenter_spatial_coef", "0.5",
            "--decoder_depth", "1", "--num_workers", "0", "--no_progress", "--device", "cpu", "--seed", "3",
            "--data_path", str(tmp_path / "train.csv"), "--data_root", str(tmp_path), "--output_dir", str(out),
            "--batch_size", "2", "--epochs", "1", "--warmup_epochs", "0", "--precision", "fp32"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run([sys.executable, str(REPO / "run_pretraining.py"), *args], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (out / "checkpoint-latest.pth").is_file()
    assert "kcenter_spatial_coef: 0.5" in (out / "config.yaml").read_text()
