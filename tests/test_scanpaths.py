"""G-Eymol scanpaths (snappix.scanpaths): field, fixations, scan_idx files, determinism, real clips."""

from __future__ import annotations

import numpy as np
import pytest

from snappix.scanpaths import (GEymol, GEymolParams, GravityField, ScanpathFormatError, compute_scanpath,
                               detect_fixations, direct_force, fixation_rows, format_scanpath, gravity_kernel,
                               grid_cell, read_scanpath, video_seed, window_size, write_scanpath)
from snappix.scanpaths.field import sample_force, sliding_max
from snappix.scanpaths.ior import clamp_inside, ior_period, update_ior

from conftest import write_lossless_video


# ------------------------------------------------------------------------------------------------ field
def test_kernel_values():
    k = gravity_kernel(21)  # n // 10 = 2: K(v) = 3 v / (|v|^2 + 2)
    c = 10
    assert k.shape == (2, 21, 21) and k[0, c, c] == 0 and k[1, c, c] == 0
    assert k[0, c + 1, c] == pytest.approx(3 * 1 / 3) and k[1, c + 1, c] == 0
    assert k[1, c - 2, c + 3] == pytest.approx(3 * 3 / (4 + 9 + 2))
    assert np.allclose(k[0], -k[0][::-1, :]) and np.allclose(k[1], k[0].T)
    assert window_size(168, 224) == 225 and window_size(225, 10) == 225
    with pytest.raises(ValueError):
        gravity_kernel(20)


@pytest.mark.parametrize("precision,tol", [("float64", 1e-10), ("float32", 1e-4)])
@pytest.mark.parametrize("size", [(17, 23), (23, 17), (6, 6), (1, 9)])
def test_field_by_fft_matches_direct_sum(precision, tol, size):
    rng = np.random.default_rng(1)
    h, w = size
    mass = rng.random((3, h, w)) * (rng.random((3, h, w)) > 0.3)
    mass[2] = 0.0  # a channel without mass contributes nothing
    alphas = np.array([0.1, 0.05, 0.3])
    force = GravityField(h, w, precision=precision).force(mass, alphas)
    assert force.shape == (2, h, w) and force.dtype == np.float64
    ref = np.array([[direct_force(mass, alphas, r, c) for c in range(w)] for r in range(h)])
    ref = ref.transpose(2, 0, 1)  # (h, w, 2) -> (2, h, w)
    scale = max(np.abs(ref).max(), 1.0)
    assert np.abs(force - ref).max() <= tol * scale


@pytest.mark.parametrize("n", [1, 3, 9, 81, 225])
@pytest.mark.parametrize("length", [1, 2, 7, 40])
def test_sliding_max_matches_maximum_filter(n, length):
    from scipy.ndimage import maximum_filter

    rng = np.random.default_rng(n * 100 + length)
    a = rng.normal(size=(3, length, 5)).astype(np.float32)  # negatives: entries past the ends count as 0
    work = {}
    for axis in range(3):
        size = [1, 1, 1]
        size[axis] = n
        ref = maximum_filter(a, size=size, mode="constant", cval=0.0)
        for _ in range(2):  # the second call reuses the cached buffers
            out = sliding_max(a, n, axis=axis, work=work)
            assert out.shape == a.shape and out.dtype == a.dtype and (out == ref).all()


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_field_parts_and_reused_buffers(precision):
    """force = sum_c alpha_c correlate_c / window_max_c, the same on a field that already saw other frames."""
    from scipy.ndimage import maximum_filter

    rng = np.random.default_rng(5)
    h, w = 30, 41
    frames = [rng.random((4, h, w)) ** 4 * (rng.random((4, h, w)) > 0.2) for _ in range(2)]
    frames[1][3] = 0.0
    alphas = np.array([0.1, 0.2, 0.05, 0.3])
    used = GravityField(h, w, precision=precision)
    for mass in [frames[0], frames[1], frames[0]]:
        fresh = GravityField(h, w, precision=precision)
        force = used.force(mass, alphas)
        assert (force == fresh.force(mass, alphas)).all()
        m = mass.astype(precision)
        peak = used.window_max(m)
        assert (peak == maximum_filter(m, size=(1, fresh.n, fresh.n), mode="constant", cval=0.0)).all()
        scale = np.divide(alphas[:, None, None], peak, out=np.zeros(peak.shape), where=peak > 0)
        parts = (used.correlate(m) * scale[:, None].astype(precision)).sum(axis=0)
        tol = 1e-5 if precision == "float32" else 1e-12
        assert np.abs(force - parts).max() <= tol * np.abs(parts).max()


def test_sample_force_floor_and_bilinear():
    f = np.zeros((2, 3, 4))
    f[0] = np.arange(12).reshape(3, 4)
    assert sample_force(f, 1.7, 2.2)[0] == 6  # floor: pixel (1, 2)
    assert sample_force(f, -3.0, 99.0)[0] == 3  # clamped to (0, 3)
    assert sample_force(f, float("nan"), 0.0)[0] == 0
    assert sample_force(f, 1.5, 2.5, "bilinear")[0] == pytest.approx((6 + 7 + 10 + 11) / 4)
    with pytest.raises(ValueError):
        sample_force(f, 0, 0, "nearest")


def test_ior_and_clamp():
    assert clamp_inside(2.9, 300.2, 100, 200, 5) == (5, 194)
    assert clamp_inside(float("nan"), 50.9, 100, 200, 5) == (5, 50)
    assert ior_period(25) == 8 and ior_period(30) == 10 and ior_period(2) == 1
    ior = update_ior(np.zeros((120, 160)), 60, 80)
    assert ior.max() == pytest.approx(1.0) and ior.min() >= 0 and np.unravel_index(ior.argmax(), ior.shape) == (60, 80)
    twice = update_ior(ior, 60, 80)
    assert np.allclose(twice, np.minimum(1.9 * ior, 1.0))  # decay 0.9, the same blob again, clipped at 1


# ------------------------------------------------------------------------------------------ fixations
def _trace(*segments):
    return np.concatenate([np.repeat(np.array([p], float), n, axis=0) for p, n in segments])


def test_fixations_exact_on_hand_made_trace():
    # 25 fps: 50 ms needs first-to-last >= 2 frames (3 samples)
    gaze = _trace(((10, 10), 4), ((100, 100), 1), ((200, 40), 2), ((50, 300), 5))
    gaze[1] += (3, 4)  # 5 px from the anchor: same fixation
    fix = detect_fixations(gaze, fps=25, max_dist=25, min_dur=50)
    assert [(f.start, f.end) for f in fix] == [(0, 3), (7, 11)]
    assert fix[0].row == pytest.approx(10.75) and fix[0].col == pytest.approx(11.0)
    # the 2-sample run (80 ms at 25 fps covers 40 ms first-to-last) is dropped; at 10 fps it is kept
    assert [(f.start, f.end) for f in detect_fixations(gaze, fps=10)] == [(0, 3), (5, 6), (7, 11)]


def test_fixations_anchor_and_boundary():
    # drift: each sample 10 px from the previous, 25 px from the anchor is still inside, 30 is not
    gaze = np.array([[0, 0], [0, 10], [0, 20], [0, 25], [0, 30], [0, 40], [0, 50], [0, 55]], float)
    fix = detect_fixations(gaze, fps=25, max_dist=25, min_dur=50)
    assert [(f.start, f.end) for f in fix] == [(0, 3), (4, 7)]
    assert detect_fixations(np.zeros((0, 2))) == []
    assert [(f.start, f.end) for f in detect_fixations(np.zeros((3, 2)))] == [(0, 2)]
    with pytest.raises(ValueError):
        detect_fixations(np.array([[0, np.nan]]))


def test_grid_cells_and_rows():
    assert grid_cell(0, 0, 240, 320) == 0
    assert grid_cell(239.9, 319.9, 240, 320) == 48
    assert grid_cell(240, 320, 240, 320) == 48  # on the border: last cell
    assert grid_cell(120, 0, 240, 320) == 3 * 7
    gaze = _trace(((5, 300), 3), ((230, 10), 3))
    rows = fixation_rows(detect_fixations(gaze), 240, 320)
    assert rows.tolist() == [[6, 0, 2], [42, 3, 5]] and rows.dtype == np.int64
    assert fixation_rows([], 240, 320).shape == (0, 3)


# --------------------------------------------------------------------------------------- scan files
def test_scanfile_round_trip(tmp_path):
    rows = np.array([[24, 0, 9], [3, 12, 30], [48, 31, 31]])
    path = tmp_path / "sub" / "v_X.txt"
    write_scanpath(path, rows)
    assert path.read_text() == "24 0 9\n3 12 30\n48 31 31\n" == format_scanpath(rows)
    assert np.loadtxt(path).astype(int).tolist() == rows.tolist()  # what the reference's loader does
    assert read_scanpath(path, num_frames=32).tolist() == rows.tolist()
    assert not [p for p in path.parent.iterdir() if p.name != "v_X.txt"]  # no temporary left
    write_scanpath(tmp_path / "empty.txt", np.zeros((0, 3)))
    assert read_scanpath(tmp_path / "empty.txt").shape == (0, 3)


def test_scanfile_accepts_reference_floats_and_comments(tmp_path):
    p = tmp_path / "ref.txt"
    p.write_text("# cell start end\n1.200000000000000000e+01 0.0 15\n\n7\t20 40\n")
    assert read_scanpath(p).tolist() == [[12, 0, 15], [7, 20, 40]]


@pytest.mark.parametrize("text,needle", [
    ("3 0 5\n49 6 9\n", ":2: cell 49"),
    ("3 0 5\n4 9 6\n", ":2: frame range 9..6"),
    ("3 0 5 7\n", ":1: expected 3 fields"),
    ("3,0,5\n", "not commas"),
    ("3 x 5\n", ":1: start_frame 'x' is not a number"),
    ("3 0.5 5\n", ":1: start_frame '0.5' is not an integer"),
    ("3 -1 5\n", ":1: frame range -1..5"),
])
def test_scanfile_bad_line_names_file_and_line(tmp_path, text, needle):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(ScanpathFormatError) as e:
        read_scanpath(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_scanfile_frame_count_and_write_validation(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("3 0 5\n4 6 40\n")
    with pytest.raises(ScanpathFormatError, match=r"v\.txt:2: end frame 40 is past"):
        read_scanpath(p, num_frames=40)
    with pytest.raises(ScanpathFormatError):
        write_scanpath(tmp_path / "w.txt", np.array([[50, 0, 1]]))
    with pytest.raises(FileNotFoundError):
        read_scanpath(tmp_path / "missing.txt")


# ---------------------------------------------------------------------------------- the whole model
def _moving_square_frames(n=30, h=72, w=96, seed=0):
    rng = np.random.default_rng(seed)
    frames = np.full((n, h, w, 3), 40, np.uint8)
    frames += rng.integers(0, 20, frames.shape, dtype=np.uint8)
    for t in range(n):
        r, c = 10 + t, 15 + 2 * t
        frames[t, r:r + 16, c:c + 16] = (30, 200, 240)
    return frames


def test_model_deterministic_and_seed_dependent():
    frames = _moving_square_frames()
    params = GEymolParams(long_side=64)

    def run(seed):
        m = GEymol(48, 64, fps=25, params=params, seed=seed)
        import cv2
        return np.array([m.step(cv2.resize(f, (64, 48), interpolation=cv2.INTER_CUBIC)) for f in frames])

    a, b, c = run(3), run(3), run(4)
    assert a.shape == (30, 2) and (a == b).all() and not (a == c).all()
    assert (a[:, 0] >= 5).all() and (a[:, 0] <= 48 - 6).all() and (a[:, 1] >= 5).all() and (a[:, 1] <= 64 - 6).all()
    assert video_seed(0, "a/b.mp4").entropy == video_seed(0, "a/b.mp4").entropy


def test_motion_and_bilinear_options_run():
    frames = _moving_square_frames(n=10)
    for params in (GEymolParams(long_side=48, motion=True), GEymolParams(long_side=48, lookup="bilinear")):
        m = GEymol(36, 48, params=params, seed=0)
        import cv2
        out = [m.step(cv2.resize(f, (48, 36))) for f in frames]
        assert len(out) == 10 and m.alphas.shape == ((9,) if params.motion else (8,))
    with pytest.raises(ValueError):
        GEymolParams(lookup="cubic")


def test_compute_scanpath_file_in_reference_format(tmp_path):
    frames = _moving_square_frames(n=40)
    video = tmp_path / "clip.mp4"
    write_lossless_video(video, frames[..., ::-1].copy())  # RGB on disk; the pipeline decodes BGR
    params = GEymolParams(long_side=64)
    res = compute_scanpath(video, params, seed=video_seed(0, "clip.mp4"))
    again = compute_scanpath(video, params, seed=video_seed(0, "clip.mp4"))
    assert (res.rows == again.rows).all() and (res.gaze == again.gaze).all()
    assert res.gaze.shape == (40, 2) and res.size == (72, 96) and res.fps == 25
    out = tmp_path / "scan_idx_7" / "clip.txt"
    write_scanpath(out, res.rows)
    back = read_scanpath(out, num_frames=40)
    assert back.tolist() == res.rows.tolist()
    assert ((back[:, 0] >= 0) & (back[:, 0] < 49)).all() and (back[:, 1] <= back[:, 2]).all()
    assert (back[1:, 1] > back[:-1, 2]).all()  # in time order, not overlapping
    assert compute_scanpath(video, params, seed=0, max_frames=12).gaze.shape == (12, 2)


def test_real_clip_scanpath(videos_dir, tmp_path):
    clips = sorted(p for p in videos_dir.iterdir() if p.suffix.lower() in (".mp4", ".avi"))
    res = compute_scanpath(clips[0], GEymolParams(long_side=112), seed=0, max_frames=24)
    assert res.gaze.shape == (24, 2)
    write_scanpath(tmp_path / "real.txt", res.rows)
    assert read_scanpath(tmp_path / "real.txt", num_frames=24).shape == res.rows.shape
