"""python -m snappix.tools.scanpaths: tree mirroring, resume, failures, frame folders, list input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from snappix.scanpaths import read_scanpath
from snappix.tools.scanpaths import list_paths, main, output_path

from conftest import write_lossless_video

FAST = ["--long_side", "48", "--max_frames", "20"]


def _frames(seed: int, n: int = 20, h: int = 36, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 60, (n, h, w, 3), dtype=np.uint8)
    for t in range(n):
        frames[t, 5 + t // 2:15 + t // 2, 4 + t:14 + t] = 230
    return frames


@pytest.fixture
def video_tree(tmp_path):
    root = tmp_path / "videos"
    (root / "ClassA").mkdir(parents=True)
    (root / "ClassB" / "deep").mkdir(parents=True)
    write_lossless_video(root / "ClassA" / "v_a.mp4", _frames(0))
    write_lossless_video(root / "ClassB" / "deep" / "v_b.avi", _frames(1))
    return root


def _outputs(out):
    return sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)


def test_cli_mirrors_tree_and_resumes(video_tree, tmp_path, capsys):
    out = tmp_path / "scan_idx_7"
    assert main(["--video_root", str(video_tree), "--out_root", str(out), "--workers", "1", *FAST]) == 0
    assert _outputs(out) == ["ClassA/v_a.txt", "ClassB/deep/v_b.txt"]
    first = {p: (out / p).read_text() for p in _outputs(out)}
    for p in first:
        rows = read_scanpath(out / p, num_frames=20)
        assert rows.ndim == 2 and rows.shape[1] == 3
    stamp = os.stat(out / "ClassA/v_a.txt").st_mtime_ns
    assert main(["--video_root", str(video_tree), "--out_root", str(out), "--workers", "1", *FAST]) == 0
    assert "0 written, 2 already done" in capsys.readouterr().out
    assert os.stat(out / "ClassA/v_a.txt").st_mtime_ns == stamp
    # two workers, recomputed: the same files (per-video seeds do not depend on the order)
    assert main(["--video_root", str(video_tree), "--out_root", str(out), "--workers", "2", "--overwrite", *FAST]) == 0
    assert {p: (out / p).read_text() for p in _outputs(out)} == first
    assert not [p for p in _outputs(out) if p.endswith(".tmp")]


def test_cli_reports_unreadable_video_and_continues(video_tree, tmp_path, capsys):
    (video_tree / "ClassA" / "broken.mp4").write_bytes(b"not a video")
    (video_tree / "ClassA" / "empty.mp4").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["--video_root", str(video_tree), "--out_root", str(out), "--workers", "1", *FAST]) == 1
    err = capsys.readouterr().err
    assert "2 video(s) failed" in err and "ClassA/broken.mp4" in err and "ClassA/empty.mp4" in err
    assert (out / "ClassA" / "v_a.txt").is_file() and (out / "ClassB" / "deep" / "v_b.txt").is_file()
    assert "broken.mp4" in (out / "scanpaths_failures.tsv").read_text()
    (video_tree / "ClassA" / "broken.mp4").unlink()
    (video_tree / "ClassA" / "empty.mp4").unlink()
    assert main(["--video_root", str(video_tree), "--out_root", str(out), "--workers", "1", *FAST]) == 0
    assert not (out / "scanpaths_failures.tsv").exists()


def test_cli_frame_folders_and_list(tmp_path):
    from PIL import Image

    frames_root = tmp_path / "jpegs_256"
    folder = frames_root / "v_c"
    folder.mkdir(parents=True)
    for i, f in enumerate(_frames(2)):
        Image.fromarray(f).save(folder / f"frame{i + 1:06d}.png")
    out = tmp_path / "scan"
    assert main(["--frames_root", str(frames_root), "--out_root", str(out), "--workers", "1", *FAST]) == 0
    assert _outputs(out) == ["v_c.txt"]
    listed = tmp_path / "train.csv"
    listed.write_text("path,label\nv_c,0\n")
    out2 = tmp_path / "scan2"
    assert main(["--list", str(listed), "--data_root", str(frames_root), "--out_root", str(out2), "--workers", "1",
                 *FAST]) == 0
    assert (out2 / "v_c.txt").read_text() == (out / "v_c.txt").read_text()


def test_list_parsing_and_output_names(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("# comment\nClassA/v_1.avi 3\n\nClassB/v_2.mp4 4\n")
    assert list_paths(str(p)) == ["ClassA/v_1.avi", "ClassB/v_2.mp4"]
    assert output_path("o", "ClassA/v_1.avi") == os.path.join("o", "ClassA/v_1.txt")
    assert output_path("o", "frames/v_1.0") == os.path.join("o", "frames/v_1.0.txt")


def test_cli_no_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["--video_root", str(tmp_path / "empty"), "--out_root", str(tmp_path / "o")]) == 2
    assert "no input" in capsys.readouterr().err
