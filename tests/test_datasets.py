"""Datasets: modes and shapes on real and synthetic clips; bad videos are retried, substituted,
logged, counted and bounded; masks attached with exact counts."""

import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import synthetic_frames, write_lossless_video
from snappix.data.datasets import (BAD_VIDEOS_FILE, TooManyBadVideos, VideoClsDataset, VideoPretrainDataset,
                                   multiple_samples_collate)
from snappix.data.lists import write_list
from snappix.masking import build_mask_generator


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    for i, n in enumerate([40, 70, 9]):
        write_lossless_video(root / f"v{i}.mp4", synthetic_frames(n, 48, 64, seed=i))
    return root


def test_classification_modes_and_shapes(clip_dir, tmp_path):
    lst = tmp_path / "train.csv"
    write_list(lst, [(f"v{i}.mp4", i) for i in range(3)], "cls")
    common = dict(data_root=str(clip_dir), num_frames=8, sampling_rate=2, input_size=32, short_side_size=32,
                  gray="mean")
    train = VideoClsDataset(str(lst), mode="train", num_sample=2, **common)
    s = train[1]
    assert s["video"].shape == (2, 1, 8, 32, 32) and s["label"] == 1 and not s["substituted"]
    batch = multiple_samples_collate([train[0], train[1]])
    assert batch["video"].shape == (4, 1, 8, 32, 32) and batch["label"].tolist() == [0, 0, 1, 1]
    val = VideoClsDataset(str(lst), mode="validation", **common)
    assert len(val) == 3 and val[2]["video"].shape == (1, 8, 32, 32)
    assert torch.equal(val[0]["video"], val[0]["video"])  # deterministic
    test = VideoClsDataset(str(lst), mode="test", test_num_segment=2, test_num_crop=3, **common)
    assert len(test) == 3 * 6
    views = [test[i] for i in range(6, 12)]
    assert {(v["index"], v["segment"], v["crop"]) for v in views} == {(1, s, c) for s in range(2) for c in range(3)}
    assert not torch.equal(views[0]["video"], views[3]["video"])  # different temporal views
    assert not torch.equal(views[0]["video"], views[2]["video"])  # different spatial crops


def test_real_clips_through_both_datasets(videos_dir, tmp_path):
    names = sorted(os.listdir(videos_dir))
    write_list(tmp_path / "cls.csv", [(n, i) for i, n in enumerate(names)], "cls")
    write_list(tmp_path / "pre.csv", [(n, 0, -1) for n in names], "pretrain")
    grid = (8, 14, 14)
    pre = VideoPretrainDataset(str(tmp_path / "pre.csv"), str(videos_dir), input_size=112, gray="mean",
                               encoder_mask=build_mask_generator("tube", grid, 0.85),
                               decoder_mask=build_mask_generator("run_cell", grid, 0.5), log_dir=str(tmp_path))
    loader = DataLoader(pre, batch_size=len(names), num_workers=2)
    batch = next(iter(loader))
    assert batch["video"].shape == (len(names), 1, 16, 112, 112)
    assert (batch["encoder_mask"].sum(1) == 166 * 8).all() and (batch["decoder_mask"].sum(1) == 784).all()
    assert not batch["substituted"].any() and not (tmp_path / BAD_VIDEOS_FILE).exists()
    val = VideoClsDataset(str(tmp_path / "cls.csv"), str(videos_dir), mode="validation", gray="mean")
    assert [val[i]["label"] for i in range(len(val))] == list(range(len(names)))


def test_pretrain_ssv2_override_and_raw_frame_rows(clip_dir, tmp_path):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(synthetic_frames(30, 48, 64, seed=5)):
        cv2.imwrite(str(folder / f"img_{i + 1:05d}.png"), f)
    os.makedirs(tmp_path / "ssv2_processed", exist_ok=True)
    os.link(clip_dir / "v1.mp4", tmp_path / "ssv2_processed" / "a.mp4")
    write_list(tmp_path / "p.csv", [("ssv2_processed/a.mp4", 0, -1), ("frames", 4, 20)], "pretrain")
    ds = VideoPretrainDataset(str(tmp_path / "p.csv"), str(tmp_path), num_frames=4, sampling_rate=4,
                              input_size=32, ssv2_sampling_rate=2, train=False, log_dir=str(tmp_path))
    assert ds._indices(ds.entries[0], 70, None).tolist() == [0, 2, 4, 6]
    assert ds._indices(ds.entries[1], 20, None).tolist() == [0, 4, 8, 12]
    sample = ds[1]
    assert not (tmp_path / BAD_VIDEOS_FILE).exists(), (tmp_path / BAD_VIDEOS_FILE).read_text()
    assert sample["video"].shape == (1, 4, 32, 32) and not sample["substituted"]


@pytest.fixture
def bad_list(clip_dir, tmp_path):
    data = (clip_dir / "v0.mp4").read_bytes()
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "zero.mp4").write_bytes(b"")
    for i in range(3):
        os.link(clip_dir / f"v{i}.mp4", tmp_path / f"good{i}.mp4")
    rows = ["good0.mp4", "corrupt.mp4", "truncated.mp4", "good1.mp4", "zero.mp4", "missing.mp4", "good2.mp4"]
    write_list(tmp_path / "list.csv", [(r, i) for i, r in enumerate(rows)], "cls")
    return tmp_path, rows


def test_bad_videos_are_retried_substituted_logged_and_counted(bad_list):
    root, rows = bad_list
    ds = VideoClsDataset(str(root / "list.csv"), str(root), mode="validation", num_frames=4, sampling_rate=2,
                         input_size=32, short_side_size=32, max_bad_fraction=1.0, log_dir=str(root / "out"))
    got = [ds[i] for i in range(len(ds))]
    assert [g["index"] for g in got] == [0, 3, 3, 3, 6, 6, 6]  # next readable row substitutes
    assert [g["label"] for g in got] == [0, 3, 3, 3, 6, 6, 6]  # the label comes with the substitute
    assert [g["substituted"] for g in got] == [False, True, True, False, True, True, False]
    assert ds.num_bad == 4 and ds.tracker.seen == 7  # distinct rows tried: the 7 items (4 failed, 3 loaded)
    lines = (root / "out" / BAD_VIDEOS_FILE).read_text().splitlines()
    logged = {line.split("\t")[0]: line.split("\t")[1] for line in lines}
    assert set(logged) == {str(root / r) for r in ("corrupt.mp4", "truncated.mp4", "zero.mp4", "missing.mp4")}
    assert "0 bytes" in logged[str(root / "zero.mp4")] and "not found" in logged[str(root / "missing.mp4")]
    assert len(lines) == 4  # each bad file logged once, then skipped without re-decoding


def test_missing_files_above_threshold_stop_before_the_run(bad_list):
    root, _ = bad_list
    with pytest.raises(FileNotFoundError, match=r"(?s)1 of 7 listed files are missing.*missing.mp4"):
        VideoClsDataset(str(root / "list.csv"), str(root), mode="validation")


def test_bad_videos_above_threshold_stop_the_run_naming_files(bad_list):
    root, _ = bad_list
    ds = VideoClsDataset(str(root / "list.csv"), str(root), mode="validation", num_frames=4, sampling_rate=2,
                         input_size=32, short_side_size=32, check_missing=False, log_dir=str(root))
    loader = DataLoader(ds, batch_size=1, num_workers=2)
    with pytest.raises(TooManyBadVideos) as err:
        for _ in loader:
            pass
    assert "corrupt.mp4" in str(err.value) and "above the allowed 1.0%" in str(err.value)


def test_all_bad_list_is_bounded_not_endless(tmp_path):
    for i in range(4):
        (tmp_path / f"b{i}.mp4").write_bytes(b"junk" * 10)
    write_list(tmp_path / "l.csv", [(f"b{i}.mp4", 0) for i in range(4)], "cls")
    ds = VideoClsDataset(str(tmp_path / "l.csv"), str(tmp_path), mode="validation", max_bad_fraction=1.0,
                         max_substitutes=10)
    with pytest.raises(TooManyBadVideos, match="no readable video"):
        ds[0]
    assert ds.num_bad == 4


def test_augmentation_is_a_function_of_seed_epoch_and_item(clip_dir, tmp_path):
    write_list(tmp_path / "t.csv", [(f"v{i}.mp4", i) for i in range(3)], "cls")
    ds = VideoClsDataset(str(tmp_path / "t.csv"), str(clip_dir), mode="train", num_frames=4, sampling_rate=2,
                         input_size=24, short_side_size=24, reprob=1.0)
    ds.set_epoch(3, seed=7)
    a = ds[1]["video"]
    assert torch.equal(a, ds[1]["video"])  # same (seed, epoch, item)
    ds.set_epoch(4)
    assert not torch.equal(a, ds[1]["video"])  # a new epoch draws new augmentations
    ds.set_epoch(3)
    in_process = next(iter(DataLoader(ds, batch_size=3, num_workers=0)))["video"]
    in_workers = next(iter(DataLoader(ds, batch_size=3, num_workers=2)))["video"]
    assert torch.equal(in_process, in_workers) and torch.equal(in_process[1], a)
