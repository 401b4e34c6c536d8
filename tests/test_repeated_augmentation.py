"""Repeated augmentation (``num_sample = N``): one decode per item, N independent augmentations and masks.

As in VideoMAE / VideoMAEv2: the clip's frame indices are sampled once, its frames decoded once, and each
of the N views gets its own crop, RandAugment, flip and erasing draw (and its own masks in pretraining).
"""

import numpy as np
import pytest
import torch

from conftest import synthetic_frames, write_lossless_video
from snappix.data import video as video_module
from snappix.data.datasets import VideoClsDataset, VideoPretrainDataset
from snappix.data.lists import write_list
from snappix.masking import build_mask_generator

GRID = (4, 4, 4)  # 8 frames / tubelet 2, 32 px / patch 8


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("ra")
    for i in range(3):
        write_lossless_video(root / f"v{i}.mp4", synthetic_frames(60, 48, 64, seed=10 + i))
    write_list(root / "cls.csv", [(f"v{i}.mp4", i) for i in range(3)], "cls")
    write_list(root / "pre.csv", [(f"v{i}.mp4", 0, -1) for i in range(3)], "pretrain")
    return root


def _cls(root, n, **kw):
    return VideoClsDataset(str(root / "cls.csv"), str(root), mode="train", num_frames=8, sampling_rate=2,
                           input_size=32, short_side_size=32, gray="mean", num_sample=n, video_backend="pyav", **kw)


def _pre(root, n, **kw):
    return VideoPretrainDataset(str(root / "pre.csv"), str(root), num_frames=8, sampling_rate=2, input_size=32,
                                gray="mean", num_sample=n, video_backend="pyav",
                                encoder_mask=build_mask_generator("tube", GRID, 0.75),
                                decoder_mask=build_mask_generator("run_cell", GRID, 0.5), **kw)


class _CountingReader:
    """Counts ``get_frames`` calls of every reader opened while installed."""

    def __init__(self, monkeypatch):
        self.calls, self.indices = 0, []
        real = video_module.open_video

        def counting_open(*a, **k):
            reader = real(*a, **k)
            get = reader.get_frames

            def get_frames(idx):
                self.calls += 1
                self.indices.append(np.asarray(idx).copy())
                return get(idx)

            reader.get_frames = get_frames
            return reader

        monkeypatch.setattr("snappix.data.datasets.open_video", counting_open)


@pytest.mark.parametrize("make", [_cls, _pre], ids=["finetune", "pretrain"])
def test_one_decode_per_item_and_views_differ(clips, monkeypatch, make):
    counter = _CountingReader(monkeypatch)
    ds = make(clips, 4)
    ds.set_epoch(0, seed=1)
    sample = ds[1]
    assert counter.calls == 1, "num_sample=4 must decode the frames once"
    v = sample["video"]
    assert v.shape == (4, 1, 8, 32, 32)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(v[i], v[j]), f"views {i} and {j} are identical"
    if "encoder_mask" in sample:  # N independent masks
        masks = sample["encoder_mask"]
        assert masks.shape[0] == 4 and len({tuple(m.tolist()) for m in masks}) > 1
        assert (masks.sum(1) == masks[0].sum()).all()  # exact, equal counts


def test_views_are_independent_augmentations_of_the_same_frames(clips, monkeypatch):
    """Each view's random parameters come from its own draw, applied to the one decoded clip."""
    ds = _pre(clips, 3)
    seen = []

    def recording_transform(frames, rng, params_out=None):
        seen.append((frames.copy(), rng.random()))
        return torch.zeros(1, 8, 32, 32)

    ds.transform = recording_transform
    ds.set_epoch(0, seed=0)
    ds[0]
    assert len(seen) == 3
    assert all(np.array_equal(seen[0][0], f) for f, _ in seen)  # the same frames for every view
    assert len({r for _, r in seen}) == 3  # three different draws
    # the crops of real views vary independently: over items, the three views rarely share a crop
    ds = _pre(clips, 3)
    crops = []
    real = ds.transform

    def crop_recorder(frames, rng, params_out=None):
        out = real(frames, rng=rng, params_out=params_out)
        crops.append(tuple(params_out["crop"]))
        return out

    ds.transform = crop_recorder
    for epoch in range(6):
        ds.set_epoch(epoch, seed=0)
        for i in range(len(ds)):
            ds[i]
    groups = [crops[k:k + 3] for k in range(0, len(crops), 3)]
    assert sum(len(set(g)) > 1 for g in groups) >= len(groups) // 2


@pytest.mark.parametrize("make", [_cls, _pre], ids=["finetune", "pretrain"])
def test_deterministic_given_seed_epoch_item(clips, make):
    a, b = make(clips, 2), make(clips, 2)
    a.set_epoch(3, seed=7)
    b.set_epoch(3, seed=7)
    sa, sb = a[2], b[2]
    for key in sa:
        if isinstance(sa[key], torch.Tensor):
            assert torch.equal(sa[key], sb[key]), key
    b.set_epoch(4, seed=7)
    assert not torch.equal(sa["video"], b[2]["video"])


def test_first_view_matches_single_sample_clip(clips):
    """num_sample only adds views: the frames sampled for an item do not depend on it."""
    one, four = _cls(clips, 1, aa=None, reprob=0.0, flip=False, crop_scale=(1.0, 1.0), crop_ratio=(4 / 3, 4 / 3)), \
        _cls(clips, 4, aa=None, reprob=0.0, flip=False, crop_scale=(1.0, 1.0), crop_ratio=(4 / 3, 4 / 3))
    for ds in (one, four):
        ds.set_epoch(0, seed=5)
    # with every spatial augmentation fixed, all views equal the single-sample clip
    v1, v4 = one[0]["video"], four[0]["video"]
    for i in range(4):
        assert torch.equal(v4[i], v1)
