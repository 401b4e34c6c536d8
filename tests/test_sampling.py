"""Frame samplers: exact indices on small cases, train/val/test, short videos, determinism."""

import numpy as np
import pytest

from snappix.data import sampling as S


def rng(seed=0):
    return np.random.default_rng(seed)


def test_dense_validation_is_centred_videomae_linspace():
    # L=100, 4 frames x rate 2: span 8, end=(8+100)//2=54, start=46, linspace(46,54,4) -> 46, 48.67, 51.33, 54 -> clip 53
    assert S.dense_clip_indices(100, 4, 2, train=False).tolist() == [46, 48, 51, 53]
    assert S.dense_clip_indices(100, 4, 2, train=False, style="stride").tolist() == [46, 48, 50, 52]


def test_dense_train_windows_are_random_and_inside_the_video():
    starts = set()
    for seed in range(200):
        idx = S.dense_clip_indices(30, 4, 3, train=True, rng=rng(seed), style="stride")
        assert np.all(np.diff(idx) == 3) and idx.min() >= 0 and idx.max() < 30
        starts.add(int(idx[0]))
    assert starts == set(range(0, 30 - 12))  # end ~ U[12, 30) -> start in [0, 18)


def test_dense_short_video_padded_with_last_frame():
    assert S.dense_clip_indices(10, 6, 4, train=True, rng=rng(), style="stride").tolist() == [0, 4, 8, 9, 9, 9]
    # VideoMAE: linspace(0, 10, 10 // 4 = 2) = [0, 10] -> clipped to 9, padded with 9
    assert S.dense_clip_indices(10, 6, 4, train=False).tolist() == [0, 9, 9, 9, 9, 9]
    assert S.dense_clip_indices(1, 4, 4, train=False).tolist() == [0, 0, 0, 0]


def test_segment_sampling_test_views_and_train_ranges():
    # L=17, 4 segments: seg=4, starts 0,4,8,12; 1 view -> +int(4/2)=2
    assert S.segment_indices(17, 4, train=False).tolist() == [2, 6, 10, 14]
    # view k of 3: + int(4/4*(k+1))
    assert [S.segment_indices(17, 4, train=False, view=k, num_views=3).tolist() for k in range(3)] == [
        [1, 5, 9, 13], [2, 6, 10, 14], [3, 7, 11, 15]]
    seen = np.stack([S.segment_indices(17, 4, train=True, rng=rng(s)) for s in range(300)])
    for i in range(4):
        assert set(seen[:, i].tolist()) == set(range(4 * i, 4 * i + 5))  # inclusive ends, as in VideoMAE
    with pytest.raises(ValueError):
        S.segment_indices(17, 4, train=False, view=3, num_views=3)


def test_segment_short_video_stays_in_range():
    idx = S.segment_indices(3, 8, train=False)
    assert idx.min() >= 0 and idx.max() <= 2 and len(idx) == 8


def test_multiview_dense_views_are_evenly_spaced_windows():
    views = S.multiview_dense_indices(100, 4, 5, test_num_segment=3)
    # strided frames 0,5,...,95 (20 of them); windows of 4 start at 0, 8, 16 (in strided units)
    assert [v.tolist() for v in views] == [[0, 5, 10, 15], [40, 45, 50, 55], [80, 85, 90, 95]]
    short = S.multiview_dense_indices(6, 4, 4, test_num_segment=2)
    assert [v.tolist() for v in short] == [[0, 4, 5, 5], [0, 4, 5, 5]]


def test_snappix_pretrain_train_val_and_short_tail_repeat():
    assert S.snappix_pretrain_indices(100, 4, 4, train=False).tolist() == [0, 4, 8, 12]
    assert S.snappix_pretrain_indices(7, 4, 4, train=False).tolist() == [0, 4, 6, 6]
    offsets = {int(S.snappix_pretrain_indices(20, 4, 4, rng=rng(s))[0]) for s in range(300)}
    assert offsets == set(range(0, 20 - 16 + 1))
    # short video: offset 0, the position stops advancing once offset + step >= L
    assert S.snappix_pretrain_indices(10, 5, 4, rng=rng()).tolist() == [0, 4, 8, 8, 8]


def test_ssv2_override_is_explicit():
    assert S.sampling_rate_for_path("ssv2_processed/1.mp4", 4) == 4
    assert S.sampling_rate_for_path("ssv2_processed/1.mp4", 4, ssv2_sampling_rate=2) == 2
    assert S.sampling_rate_for_path("k400/a.mp4", 4, ssv2_sampling_rate=2) == 4


def test_trimmed_windows():
    # 100 s at 10 fps, 60 s windows every 16 s: starts 0,16,32,48,64,80,96 -> lengths 60,60,60,52,36,20,4;
    # windows shorter than 30 s are dropped
    assert S.trimmed_windows(100, 10, 1000, 60, 16) == [(0, 600), (160, 760), (320, 920), (480, 1000), (640, 1000)]
    assert S.trimmed_windows(30, 10, 300, 60, 16) == [(0, 300)]


def test_seeded_determinism_and_bad_arguments():
    a = S.dense_clip_indices(500, 16, 4, rng=rng(7))
    b = S.dense_clip_indices(500, 16, 4, rng=rng(7))
    assert a.tolist() == b.tolist() and a.dtype == np.int64
    with pytest.raises(ValueError):
        S.dense_clip_indices(0, 16, 4)
    with pytest.raises(ValueError):
        S.dense_clip_indices(10, 16, 4, style="bogus")
