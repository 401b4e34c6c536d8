"""Preprocessing never reports a partly decodable video as converted (issue 15, item 3).

A file that opens but breaks mid-stream (its header announces 50 frames, 27 decode) is converted and
listed in ``OUT/preprocess_partial.txt`` with its counts; under ``--strict`` it is a failure: not
converted, listed in ``preprocess_failed.txt`` (``truncated: ...``), exit status 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write_lossless_video
from snappix.tools.preprocess import main

pytestmark = pytest.mark.bad_input


def _write_faststart(path: Path, num_frames: int) -> None:
    """Lossless H.264 with its index (frame count) at the front, so a truncated copy still opens."""
    frames = np.random.default_rng(0).integers(0, 256, (num_frames, 48, 64, 3), dtype=np.uint8)
    write_lossless_video(path, frames, faststart=True)


@pytest.fixture
def partial_tree(tmp_path) -> Path:
    inp = tmp_path / "in"
    inp.mkdir()
    _write_faststart(inp / "whole.mp4", 50)
    data = (inp / "whole.mp4").read_bytes()
    (inp / "broken.mp4").write_bytes(data[: int(len(data) * 0.55)])  # opens, fails mid-stream
    return inp


def test_partly_decodable_video_is_listed_as_partial(partial_tree, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(partial_tree), str(out), "--cores", "1", "--no_progress"]) == 0
    lines = (out / "preprocess_partial.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(partial_tree / "broken.mp4") + "\t")
    written, expected = (int(x) for x in lines[0].split("\t")[1].split(": ")[1].split()[0:3:2])
    assert 0 < written < expected == 50
    assert (out / "broken.mp4").is_file() and (out / "whole.mp4").is_file()
    printed = capsys.readouterr().out
    assert "partial           1" in printed and "converted         2" in printed


def test_strict_refuses_a_partly_decodable_video(partial_tree, tmp_path):
    out = tmp_path / "out"
    assert main([str(partial_tree), str(out), "--cores", "1", "--no_progress", "--strict"]) == 1
    failed = (out / "preprocess_failed.txt").read_text().splitlines()
    assert len(failed) == 1 and failed[0].startswith(str(partial_tree / "broken.mp4") + "\ttruncated: ")
    assert "of the 50 frames" in failed[0]
    assert not (out / "broken.mp4").exists() and (out / "whole.mp4").is_file()
