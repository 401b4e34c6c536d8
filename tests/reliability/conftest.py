"""Fault-injection suite: categories and the summary line.

Every test here carries one category marker (registered in pyproject.toml):

* ``bad_input``: one kind of bad input (file, list row) must give a clear error or the documented skip;
* ``fault``: one fault (kill -9, truncated checkpoint, full disk, NaN, dead worker, dead rank) is survived;
* ``safety``: an untrusted file (malicious pickle, YAML tag) or a path with spaces is handled safely.

At the end of a run that collected this folder, one line counts the reliability tests that ran::

    reliability: 39 bad inputs, 12 faults, 12 safety checks, 0 lost (run: -m 'not slow')

"lost" counts failed or erroring reliability tests; a slow run (``-m slow``) prints its own line.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_frames, write_lossless_video

#: frames per clip in the bad-input tests (the short videos have fewer)
NUM_FRAMES = 4
#: the bad files of the ``bad_root`` fixture and the reason kinds check_data may give them
UNREADABLE = {
    "zero_byte.mp4": ("empty",),
    "truncated.mp4": ("open", "frames", "decode"),
    "random_bytes.mp4": ("open", "frames", "decode"),
    "text_file.mp4": ("open", "frames", "decode"),
    "missing.mp4": ("missing",),
    "a_directory.mp4": ("not_a_file",),
}
#: usable files of ``bad_root``: name -> check_data status with num_frames = NUM_FRAMES
USABLE = {"good.mp4": "ok", "one_frame.mp4": "short", "too_short.mp4": "short", "odd_113x75.mp4": "ok",
          "vertical_48x96.mp4": "ok", "vfr.mp4": "ok"}


def write_vfr_video(path: Path, frames: np.ndarray) -> None:
    """Lossless H.264 whose frame intervals vary (20, 40, 100, 33 ms, repeating)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"qp": "0", "preset": "ultrafast"}
        pts = 0
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = pts, Fraction(1, 1000)
            pts += (20, 40, 100, 33)[i % 4]
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="session")
def bad_root(tmp_path_factory) -> Path:
    """One folder with a good video and every bad file kind (see UNREADABLE and USABLE)."""
    root = tmp_path_factory.mktemp("bad inputs")  # a space in the path, on purpose
    write_lossless_video(root / "good.mp4", synthetic_frames(12, seed=1))
    good = (root / "good.mp4").read_bytes()
    (root / "zero_byte.mp4").write_bytes(b"")
    (root / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "random_bytes.mp4").write_bytes(np.random.default_rng(0).bytes(8192))
    (root / "text_file.mp4").write_text("this is not a video\n" * 40)
    (root / "a_directory.mp4").mkdir()
    write_lossless_video(root / "one_frame.mp4", synthetic_frames(1, seed=2))
    write_lossless_video(root / "too_short.mp4", synthetic_frames(NUM_FRAMES - 1, seed=3))
    write_lossless_video(root / "odd_113x75.mp4", synthetic_frames(10, height=75, width=113, seed=4))
    write_lossless_video(root / "vertical_48x96.mp4", synthetic_frames(10, height=96, width=48, seed=5))
    write_vfr_video(root / "vfr.mp4", synthetic_frames(12, seed=6))
    return root


CATEGORIES = (("bad_input", "bad inputs"), ("fault", "faults"), ("safety", "safety checks"))
_results: dict[str, dict] = {}


def pytest_runtest_logreport(report):
    """Record the outcome of each categorised test (setup, call and teardown reports)."""
    category = next((name for name, _ in CATEGORIES if name in report.keywords), None)
    if category is None:
        return
    entry = _results.setdefault(report.nodeid, {"category": category, "outcome": "passed"})
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


def reliability_summary(results: dict[str, dict], markexpr: str = "") -> str:
    """The summary line for ``{nodeid: {"category", "outcome"}}``."""
    counts = {name: 0 for name, _ in CATEGORIES}
    lost = skipped = 0
    for entry in results.values():
        if entry["outcome"] == "passed":
            counts[entry["category"]] += 1
        elif entry["outcome"] == "skipped":
            skipped += 1
        else:
            lost += 1
    parts = [f"{counts[name]} {label}" for name, label in CATEGORIES]
    run = f"run: -m '{markexpr}'" if markexpr else "run: all tests"
    extra = f", {skipped} skipped" if skipped else ""
    return f"reliability: {', '.join(parts)}, {lost} lost{extra} ({run})"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _results:
        return
    terminalreporter.write_line(reliability_summary(_results, config.getoption("markexpr", "") or ""))
