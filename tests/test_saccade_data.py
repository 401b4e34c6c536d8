"""Saccade-VSSL's fixation clips on hand-made scanpaths: fixation choice (deduplication, padding), clip starts,
instance ids, the focus map's geometry on the 128 x 171 canvas and how it follows the clip's crop and flip, and
the plug's scanpath errors (docs/methods/saccade.md, "Data and pretraining")."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from snappix.data.fixation_clips import (FixationAugment, center_crop_box, clip_frames, fixation_starts, focus_box,
                                         focus_canvas, focus_frame, pad_fixations, random_fixations,
                                         select_fixations)
from snappix.data.fixation_dataset import FixationClipDataset
from snappix.data.lists import ListEntry, write_list
from snappix.data.video_writer import write_video
from snappix.errors import UserError
from snappix.methods import saccade as plug
from snappix.scanpaths import ScanpathFormatError, write_scanpath

ROWS = np.array([[5, 10, 19], [5, 30, 40], [9, 50, 60], [12, 70, 80]])


# ------------------------------------------------------------------------------------------------ fixations
def test_first_focus_num_rows_without_deduplication():
    np.testing.assert_array_equal(select_fixations(ROWS, 3, False), ROWS[:3])
    np.testing.assert_array_equal(select_fixations(ROWS[:2], 3, False), ROWS[:2])


def test_deduplication_drops_repeated_cells_without_taking_later_rows():
    # only the first 3 rows are scanned: row 2 repeats cell 5 and is dropped, row 4 (cell 12) is not taken instead
    np.testing.assert_array_equal(select_fixations(ROWS, 3, True), ROWS[[0, 2]])
    np.testing.assert_array_equal(select_fixations(np.array([[7, 0, 3], [7, 4, 9]]), 3, True), [[7, 0, 3]])
    assert select_fixations(np.zeros((0, 3)), 3, True).shape == (0, 3)


def test_padding_uses_the_padding_cells_in_order_and_random_spans():
    rng = np.random.default_rng(0)
    out = pad_fixations(ROWS[[0, 2]], 3, video_len=100, span=16, pad_cells=[40, 41, 42], rng=rng)
    np.testing.assert_array_equal(out[:2], ROWS[[0, 2]])
    assert out[2, 0] == 40 and 1 <= out[2, 1] < 100 - 16 and out[2, 2] == out[2, 1] + 16
    empty = pad_fixations(np.zeros((0, 3)), 3, 100, 16, [40, 41, 42], rng)
    assert empty[:, 0].tolist() == [40, 41, 42]
    short = pad_fixations(np.zeros((0, 3)), 2, video_len=17, span=16, pad_cells=[3, 4], rng=rng)
    assert short[:, 1].tolist() == [0, 0] and short[:, 2].tolist() == [16, 16]  # too short to draw: start 0
    with pytest.raises(ValueError, match="padding cells"):
        pad_fixations(np.zeros((0, 3)), 3, 100, 16, [1], rng)


def test_random_fixations_have_distinct_cells():
    out = random_fixations(3, 7, 100, 16, np.random.default_rng(1))
    assert out.shape == (3, 3) and len(set(out[:, 0])) == 3 and ((0 <= out[:, 0]) & (out[:, 0] < 49)).all()


def test_clip_a_at_the_fixation_start_and_clip_b_half_a_fixation_later():
    fix = np.array([[5, 10, 19], [9, 50, 60], [1, 95, 99]])
    a, b = fixation_starts(fix, video_len=100, span=16)
    # offsets (e - s + 1) // 2 = 5, 5, 2; the last one is pulled back to 100 - 16 - 2 = 82
    assert a.tolist() == [10, 50, 82] and b.tolist() == [15, 55, 84]
    assert (b + 16 <= 100).all()
    a, b = fixation_starts(np.array([[0, 4, 11]]), video_len=10, span=16)  # shorter than a clip
    assert a.tolist() == [0] and b.tolist() == [4]
    np.testing.assert_array_equal(clip_frames(4, 4, 3, 10), [4, 7, 9, 9])  # clipped to the last frame


# ------------------------------------------------------------------------------------------------ focus maps
def test_focus_box_on_the_128_x_171_canvas():
    # cell (r, c): centre (18 r + 9, 24 c + 12); half-size 32 x 42 (+ 6 x 8 with margin_h 12)
    assert focus_box(24, 7, 12) == (63 - 38, 63 + 38, 84 - 50, 84 + 50)
    assert focus_box(24, 7, 0) == (63 - 32, 63 + 32, 84 - 42, 84 + 42)
    assert focus_box(0, 7, 12) == (0, 9 + 38, 0, 12 + 50)  # clipped at the top-left border
    assert focus_box(48, 7, 12) == (117 - 38, 128, 156 - 50, 171)
    m = focus_canvas(24, 7, 12)
    assert m.shape == (128, 171) and m.sum() == 76 * 100 and set(m.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="outside"):
        focus_box(49, 7)


def test_focus_map_stretched_to_the_frame():
    assert torch.equal(focus_frame(10, 128, 171, 7, 12)[0], focus_canvas(10, 7, 12))
    big = focus_frame(24, 256, 342, 7, 12)[0]
    rows, cols = big.nonzero()[:, 0], big.nonzero()[:, 1]
    assert (rows.min().item(), rows.max().item() + 1) == (2 * 25, 2 * 101)
    assert (cols.min().item(), cols.max().item() + 1) == (2 * 34, 2 * 134)


@pytest.mark.parametrize("seed", range(6))
def test_focus_map_follows_the_clip_crop_resize_and_flip(seed):
    """Frames that show the focus map itself (white box on black): after the same augmentation the clip and the
    map agree to the uint8 rounding, whatever the crop and the flip; the map gets no colour change."""
    fmap = focus_frame(16, 128, 171, 7, 12)
    frames = (fmap[0] * 255).to(torch.uint8)[None, :, :, None].expand(3, 128, 171, 3).numpy().copy()
    aug = FixationAugment(48, train=True, jitter_p=0.0, blur_p=0.0, gray="first")
    clip, m = aug(frames, fmap, random.Random(seed))
    assert clip.shape == (1, 3, 48, 48) and m.shape == (1, 48, 48)
    assert (clip[0] - m).abs().max() < 2 / 255
    jittered = FixationAugment(48, train=True, jitter_p=1.0, blur_p=1.0, gray="first")
    _, m2 = jittered(frames, fmap, random.Random(seed))
    assert torch.equal(m, m2)  # the same draws give the same map: jitter and blur never touch it


def test_flip_mirrors_the_map():
    fmap = focus_frame(7, 128, 171, 7, 0)  # a box on the left: row 1, column 0
    aug = FixationAugment(64, train=True, bottom_area=1.0, jitter_p=0.0, blur_p=0.0)
    maps = []
    for seed in range(40):
        rng = random.Random(seed)
        _, m = aug(np.zeros((1, 128, 171, 3), np.uint8), fmap, rng)
        maps.append(m[0])
    left = [m for m in maps if m[:, :32].sum() > m[:, 32:].sum()]
    right = [m for m in maps if m[:, :32].sum() < m[:, 32:].sum()]
    assert left and right  # some draws flipped the clip, and the box went with it


def test_evaluation_crop_is_centred_and_deterministic():
    assert center_crop_box(256, 340, 196 / 256) == (30, 72, 196, 196)
    fmap = focus_frame(24, 128, 171, 7, 12)
    frames = np.random.default_rng(0).integers(0, 255, (2, 128, 171, 3), dtype=np.uint8)
    aug = FixationAugment(32, train=False)
    c1, m1 = aug(frames, fmap, random.Random(1))
    c2, m2 = aug(frames, fmap, random.Random(2))
    assert torch.equal(c1, c2) and torch.equal(m1, m2) and c1.shape == (3, 2, 32, 32)


# ------------------------------------------------------------------------------------------------ dataset
@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fix")
    (root / "v").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_video(str(root / "v" / f"c{i}.mp4"), rng.integers(0, 255, (30, 40, 64, 3), dtype=np.uint8))
    write_list(root / "train.csv", [(f"v/c{i}.mp4", 0, -1) for i in range(3)], "pretrain")
    return root


def test_dataset_items_instances_and_shapes(tiny_videos):
    scans = [np.array([[3, 2, 9], [3, 10, 12], [20, 14, 21]]), np.array([[1, 0, 5]]), np.zeros((0, 3))]
    ds = FixationClipDataset(str(tiny_videos / "train.csv"), str(tiny_videos), scanpaths=scans, deduplicate=True,
                             num_frames=4, sampling_rate=2, input_size=32, gray=None, margin_h=12)
    assert ds.n_instances == 9 and len(ds) == 3
    item = ds[1]
    assert item["video"].shape == (6, 3, 4, 32, 32) and item["focus"].shape == (6, 1, 32, 32)
    assert item["instance"].tolist() == [3, 4, 5, 3, 4, 5]
    fix = item["fixations"].numpy()
    assert fix[0].tolist() == [1, 0, 5] and fix[1:, 0].tolist() == ds.pad_cells[:2]
    assert ds[0]["fixations"][:, 0].tolist() == [3, 20, ds.pad_cells[0]]  # deduplicated, then padded
    starts = ds.clip_starts(np.array([[3, 2, 9], [20, 14, 21], [0, 25, 29]]), 30)
    assert starts.tolist() == [2, 14, 21, 6, 18, 23]  # span 7: A = min(s, 30 - 7 - o), B = A + o
    cluster = FixationClipDataset(str(tiny_videos / "train.csv"), str(tiny_videos), scanpaths=scans, mode="cluster",
                                  num_frames=4, input_size=32)
    c = cluster[2]
    assert c["video"].shape == (3, 1, 4, 32, 32) and c["instance"].tolist() == [6, 7, 8]
    assert torch.equal(cluster[2]["video"], c["video"])  # deterministic feature pass
    assert cluster.clip_starts(np.array([[3, 2, 9], [3, 28, 29]]), 30).tolist() == [2, 26]


def test_dataset_without_scanpaths_draws_random_cells(tiny_videos):
    ds = FixationClipDataset(str(tiny_videos / "train.csv"), str(tiny_videos), scanpaths=None, num_frames=4,
                             input_size=32)
    cells = ds[0]["fixations"][:, 0].tolist()
    assert len(set(cells)) == 3
    with pytest.raises(ValueError, match="3 rows but 2 scanpaths"):
        FixationClipDataset(str(tiny_videos / "train.csv"), str(tiny_videos), scanpaths=[np.zeros((0, 3))] * 2)


def test_plug_names_missing_and_malformed_scanpath_files(tmp_path):
    entries = [ListEntry(str(tmp_path / "v" / f"c{i}.mp4"), f"v/c{i}.mp4", line_no=i + 1) for i in range(3)]
    write_scanpath(tmp_path / "scan" / "v" / "c0.txt", np.array([[1, 0, 4]]))
    write_scanpath(tmp_path / "scan" / "c1.txt", np.array([[2, 0, 4]]))  # the reference's flat layout
    with pytest.raises(plug.ScanpathMissingError, match=r"(?s)1 of 3 videos of train.csv.*train.csv:3 v/c2.mp4"):
        plug.read_scanpaths(entries, str(tmp_path / "scan"), 7, "train.csv")
    (tmp_path / "scan" / "v" / "c2.txt").write_text("1 0 4\n50 3 9\n")
    with pytest.raises(ScanpathFormatError, match=r"c2.txt:2: cell 50"):
        plug.read_scanpaths(entries, str(tmp_path / "scan"), 7, "train.csv")
    (tmp_path / "scan" / "v" / "c2.txt").write_text("1 0 4\n")
    rows = plug.read_scanpaths(entries, str(tmp_path / "scan"), 7, "train.csv")
    assert [r.tolist() for r in rows] == [[[1, 0, 4]], [[2, 0, 4]], [[1, 0, 4]]]


def test_plug_check_resolves_reference_names_and_refuses_missing_scanpaths(tmp_path):
    from run_pretraining import build_parser
    from snappix.engine.args import parse_args

    base = ["--task", "saccade", "--data_path", "x.csv", "--num_frames", "4"]
    args = parse_args(build_parser(), [*base, "--model", "r21d", "--dataset", "hmdb51", "--learning_rate", "0.1",
                                       "--save_freq", "60", "--deduplicate", "True", "--clip_len", "8"])
    plug.check(args)
    assert args.model == "saccade_r21d" and args.random_fixations and args.lr == 0.1 and args.save_ckpt_freq == 60
    assert args.deduplicate is True and args.num_frames == 8
    with pytest.raises(UserError, match="--scanpath_root"):
        plug.check(parse_args(build_parser(), [*base, "--model", "r3d"]))
    with pytest.raises(UserError, match="saccade_r3d or saccade_r21d"):
        plug.check(parse_args(build_parser(), [*base, "--model", "vit_small", "--random_fixations"]))
