"""Tests of the SnapPix preprocessing (snappix/tools/preprocess.py, preprocess_data.py; SnapPix spec §7.1).

The reference values are computed here independently of the module: the sRGB->linear table from the
formula with ``math``, then ``cv2.resize`` (bilinear) and ``cv2.cvtColor(BGR2GRAY)`` on frames decoded
with ``cv2.VideoCapture``. Outputs are decoded with decord (channel 0, the training reader) and PyAV.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from snappix.tools import preprocess as pp

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "preprocess_data.py"
# The default codec (lossless H.264, full-range grey) decodes to exactly the formula's values: measured
# max abs error 0 / mean 0.000 grey levels on all five shared clips with decord and PyAV (SnapPix's
# mp4v: max 30-41, mean 1.7-2.3). The test keeps the +-2 tolerance of the specification.
TOL = 2


def _videos_dir() -> Path | None:
    env = os.environ.get("SNAPPIX_TEST_VIDEOS")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "videos"
    return path if path.is_dir() else None


VIDEOS = _videos_dir()
needs_videos = pytest.mark.skipif(
    VIDEOS is None,
    reason="real test clips not found: set SNAPPIX_TEST_VIDEOS or provide <repo>/../shared/data/videos",
)


def _run_cli(*args: str | os.PathLike, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args), "--no_progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    if check_rc is not None:
        assert proc.returncode == check_rc, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _summary_count(stdout: str, key: str) -> int:
    match = re.search(rf"^\s+{key}\s+(\d+)", stdout, flags=re.MULTILINE)
    if match:
        return int(match.group(1))
    raise AssertionError(f"no {key!r} in summary:\n{stdout}")


def _formula_lut() -> np.ndarray:
    out = []
    for i in range(256):
        v = i / 255
        lin = v / 12.92 if v <= 0.04045 else math.pow((v + 0.055) / 1.055, 2.4)
        out.append(int(min(max(lin * 255, 0.0), 255.0)))  # int() truncates toward zero
    return np.array(out, dtype=np.uint8)


def _reference(bgr: np.ndarray, short_side: int = 112) -> np.ndarray:
    """LUT -> resize -> grey, written independently of the module."""
    lin = _formula_lut()[bgr]
    h, w = bgr.shape[:2]
    scale = short_side / min(h, w)
    size = (int(w * scale), int(h * scale))
    return cv2.cvtColor(cv2.resize(lin, size, interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2GRAY)


def _cv2_frames(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def _decord_gray(path: Path) -> tuple[np.ndarray, float]:
    import decord

    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()[..., 0], reader.get_avg_fps()


def _pyav_gray(path: Path) -> tuple[np.ndarray, Fraction]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate)
        frames = [f.to_ndarray(format="rgb24")[..., 0] for f in container.decode(stream)]
    return np.stack(frames), rate


def _assert_close(out: np.ndarray, ref: np.ndarray, what: str) -> None:
    assert out.shape == ref.shape, f"{what}: shape {out.shape} != {ref.shape}"
    err = np.abs(out.astype(np.int16) - ref.astype(np.int16))
    assert err.max() <= TOL, f"{what}: max abs error {err.max()} (mean {err.mean():.3f}) > {TOL}"


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def test_lut_matches_formula_with_truncation():
    lut = pp.srgb_to_linear_lut()
    assert lut.shape == (256,) and lut.dtype == np.uint8
    # Hand-checked: 10 -> 0.774 and 254 -> 252.73 show truncation (rounding would give 1 and 253);
    # 13 -> 1.026, 50 -> 8.13, 128 -> 55.04, 200 -> 147.28.
    for i, expected in {0: 0, 1: 0, 10: 0, 13: 1, 50: 8, 128: 55, 200: 147, 254: 252, 255: 255}.items():
        assert lut[i] == expected, (i, lut[i], expected)
    np.testing.assert_array_equal(lut, _formula_lut())
    assert np.all(np.diff(lut.astype(int)) >= 0)


def test_output_size_truncates_long_side_and_keeps_short_side():
    assert pp.output_size(256, 340, 112) == (112, 148)  # 340 * 0.4375 = 148.75 -> 148
    assert pp.output_size(340, 256, 112) == (148, 112)  # portrait
    assert pp.output_size(240, 320, 112) == (112, 149)  # UCF101
    assert pp.output_size(64, 64, 112) == (112, 112)  # upsampling
    # int(142 * (112 / 142)) is 111 in floating point; the short side stays 112.
    assert int(142 * (112 / 142)) == 111
    assert pp.output_size(142, 200, 112)[0] == 112
    with pytest.raises(ValueError):
        pp.output_size(0, 10, 112)


def test_preprocess_frame_shape_dtype_and_values():
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, size=(256, 340, 3), dtype=np.uint8)
    out = pp.preprocess_frame(bgr, 112)
    assert out.shape == (112, 148) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, _reference(bgr))


def test_preprocess_frame_is_bgr_and_linearises_before_grey():
    # Constant colour: resize is a no-op, so grey = BT.601 weights on the *linearised* channels.
    b, g, r = 30, 128, 250
    bgr = np.empty((120, 160, 3), np.uint8)
    bgr[...] = (b, g, r)
    out = pp.preprocess_frame(bgr, 112)
    lut = _formula_lut()
    expected = 0.114 * lut[b] + 0.587 * lut[g] + 0.299 * lut[r]  # 0.114*2 + 0.587*55 + 0.299*239
    assert out.shape == (112, 149)
    assert np.all(np.abs(out.astype(float) - expected) <= 0.5 + 1e-6)
    # Grey before linearisation would differ by far more than a level.
    assert abs(expected - lut[int(round(0.114 * b + 0.587 * g + 0.299 * r))]) > 10


def test_preprocess_frame_rejects_bad_input():
    with pytest.raises(TypeError):
        pp.preprocess_frame(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError):
        pp.preprocess_frame(np.zeros((10, 10), np.uint8))


def test_parse_formats():
    assert pp.parse_formats(".mp4,.avi") == (".mp4", ".avi")
    assert pp.parse_formats(["MP4", ".webm", ".mp4"]) == (".mp4", ".webm")
    with pytest.raises(ValueError):
        pp.parse_formats(" , ")


# ---------------------------------------------------------------------------------------------
# One video (synthetic, no shared data needed)
# ---------------------------------------------------------------------------------------------


def _write_color_video(path: Path, n: int = 12, size=(48, 64), rate=Fraction(30000, 1001)) -> list[np.ndarray]:
    """A small colour H.264 clip; returns the BGR frames as OpenCV decodes them."""
    import av

    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(n):
            rgb = np.stack([(xx * 4 + t * 9) % 256, (yy * 5) % 256, (xx + yy + t * 20) % 256], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    frames, _ = _cv2_frames(path)
    assert len(frames) == n
    return frames


def test_preprocess_video_exact_values_and_ntsc_rate(tmp_path):
    src = tmp_path / "clip.mp4"
    frames = _write_color_video(src)
    dst = tmp_path / "out" / "clip.mp4"
    result = pp.preprocess_video(src, dst, verify=True)
    assert result.frames == 12 and result.fps == Fraction(30000, 1001)
    assert (result.height, result.width) == (112, 149)
    ref = np.stack([_reference(f) for f in frames])
    out, dfps = _decord_gray(dst)
    _assert_close(out, ref, "decord")
    np.testing.assert_array_equal(out, ref)  # lossless codec: exact, not only within +-2
    out_av, rate = _pyav_gray(dst)
    np.testing.assert_array_equal(out_av, ref)
    assert rate == Fraction(30000, 1001) and abs(dfps - 30000 / 1001) < 1e-3
    assert sorted(p.name for p in dst.parent.iterdir()) == ["clip.mp4"]


def test_preprocess_video_mp4v_is_decodable(tmp_path):
    src = tmp_path / "clip.mp4"
    frames = _write_color_video(src, size=(56, 80))
    dst = tmp_path / "clip_mp4v.mp4"
    pp.preprocess_video(src, dst, codec="mp4v", verify=True)
    out, _ = _decord_gray(dst)
    ref = np.stack([_reference(f) for f in frames])
    assert out.shape == ref.shape == (12, 112, 160)
    assert np.abs(out.astype(int) - ref.astype(int)).mean() < 5  # lossy, SnapPix's codec


def test_interrupted_write_leaves_no_output(tmp_path, monkeypatch):
    src = tmp_path / "clip.mp4"
    _write_color_video(src)
    dst = tmp_path / "out" / "clip.mp4"
    real, calls = pp.preprocess_frame, []

    def failing(bgr, short_side=112, lut=None):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(bgr, short_side, lut)

    monkeypatch.setattr(pp, "preprocess_frame", failing)
    with pytest.raises(KeyboardInterrupt):
        pp.preprocess_video(src, dst)
    assert not dst.exists()
    assert list(dst.parent.iterdir()) == []  # the partial file was removed


def test_unreadable_and_empty_inputs_raise(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(pp.VideoReadError):
        pp.preprocess_video(bad, tmp_path / "o" / "bad.mp4")
    assert not (tmp_path / "o" / "bad.mp4").exists()


# ---------------------------------------------------------------------------------------------
# CLI on the real clips
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    if VIDEOS is None:
        pytest.skip("real test clips not found: set SNAPPIX_TEST_VIDEOS or provide <repo>/../shared/data/videos")
    out = tmp_path_factory.mktemp("pre") / "out"
    proc = _run_cli(VIDEOS, out, "--input_format", ".mp4", "--cores", "2")
    return out, proc


@needs_videos
def test_cli_converts_every_clip_within_tolerance(converted):
    out, proc = converted
    sources = sorted(VIDEOS.glob("*.mp4"))
    assert sources, f"no .mp4 clips in {VIDEOS}"
    assert _summary_count(proc.stdout, "converted") == len(sources)
    assert _summary_count(proc.stdout, "failed") == 0
    assert (out / "preprocess_failed.txt").read_text() == ""
    assert sorted(p.name for p in out.glob("*.mp4")) == [s.name for s in sources]
    for src in sources:
        frames, fps = _cv2_frames(src)
        ref = np.stack([_reference(f) for f in frames])
        dec, dfps = _decord_gray(out / src.name)
        _assert_close(dec, ref, f"decord {src.name}")
        assert len(dec) == len(frames)
        assert abs(dfps - fps) < 1e-3, (src.name, dfps, fps)
        dav, rate = _pyav_gray(out / src.name)
        _assert_close(dav, ref, f"pyav {src.name}")
        assert abs(float(rate) - fps) < 1e-3


@needs_videos
def test_cli_second_run_skips_everything(converted):
    out, _ = converted
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    proc = _run_cli(VIDEOS, out, "--input_format", ".mp4", "--cores", "2")
    assert _summary_count(proc.stdout, "converted") == 0
    assert _summary_count(proc.stdout, "skipped existing") == len(before)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == before


@needs_videos
def test_cli_logs_corrupt_input_and_keeps_going(tmp_path):
    inp = tmp_path / "in"
    (inp / "a" / "b").mkdir(parents=True)
    (inp / "x.mp4").write_bytes(np.random.default_rng(2).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    (inp / "a" / "b" / "good.mp4").symlink_to(VIDEOS / "rawvideo_dataset_part_0.mp4")
    out = tmp_path / "out"
    proc = _run_cli(inp, out, "--input_format", ".mp4", "--cores", "2")
    assert _summary_count(proc.stdout, "converted") == 1
    assert _summary_count(proc.stdout, "failed") == 1
    lines = (out / "preprocess_failed.txt").read_text().splitlines()
    assert len(lines) == 1
    path, reason = lines[0].split("\t")
    assert Path(path) == inp / "x.mp4" and reason
    assert (out / "a" / "b" / "good.mp4").is_file()  # mirrored folder structure
    assert not (out / "x.mp4").exists()
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no partial files left behind
    # --strict turns failures into a non-zero exit; the good output is skipped as existing.
    proc = _run_cli(inp, out, "--input_format", ".mp4", "--cores", "2", "--strict", check_rc=1)
    assert _summary_count(proc.stdout, "skipped existing") == 1


@needs_videos
def test_cli_flat_reports_name_collision(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "test.avi").symlink_to(VIDEOS / "test.avi")
    (inp / "test.mp4").symlink_to(VIDEOS / "test.mp4")
    out = tmp_path / "out"
    proc = _run_cli(inp, out, "--input_format", ".mp4,.avi", "--flat", "--cores", "2")
    assert _summary_count(proc.stdout, "videos found") == 2
    assert _summary_count(proc.stdout, "converted") == 1
    assert _summary_count(proc.stdout, "duplicates") == 1
    skipped, kept, dst = (out / "preprocess_duplicate.txt").read_text().strip().split("\t")
    assert (Path(skipped).name, Path(kept).name, Path(dst)) == ("test.mp4", "test.avi", out / "test.mp4")
    assert sorted(p.name for p in out.glob("*.mp4")) == ["test.mp4"]
    # The kept output is test.avi's (320x240 -> 149x112).
    dec, _ = _decord_gray(out / "test.mp4")
    assert dec.shape[1:] == (112, 149)


def test_cli_missing_input_is_a_clear_error(tmp_path):
    proc = _run_cli(tmp_path / "nope", tmp_path / "out", check_rc=2)
    assert "does not exist" in proc.stderr
    assert not (tmp_path / "out").exists()
