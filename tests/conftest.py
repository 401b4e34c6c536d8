"""Shared test helpers: the real clips of ../shared and lossless synthetic videos written with PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP_NO_VIDEOS = ("real test clips not found: set SNAPPIX_TEST_VIDEOS or provide "
                  "<repo>/../shared/data/videos")


def shared_videos_dir() -> Path | None:
    """The real clips: $SNAPPIX_TEST_VIDEOS, else <repo>/../shared/data/videos; None if absent."""
    env = os.environ.get("SNAPPIX_TEST_VIDEOS")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "videos"
    return path if path.is_dir() and any(path.iterdir()) else None


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    path = shared_videos_dir()
    if path is None:
        pytest.skip(SKIP_NO_VIDEOS)
    return path


def write_lossless_video(path: Path, frames: np.ndarray, fps: int = 25, faststart: bool = False) -> None:
    """Write uint8 RGB frames (T, H, W, 3) as lossless H.264 RGB (libx264rgb, qp 0) with PyAV.

    ``faststart`` puts the index (with the frame count) at the front, so a truncated copy still opens.
    """
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream("libx264rgb", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"qp": "0", "preset": "ultrafast", "g": "8"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def synthetic_frames(num_frames: int = 40, height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Distinct random RGB frames; frame t also carries t in pixel (0, 0, 0) so order is checkable."""
    frames = np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(num_frames) % 256
    return frames


@pytest.fixture
def synthetic_video(tmp_path) -> tuple[Path, np.ndarray]:
    frames = synthetic_frames()
    path = tmp_path / "synthetic.mp4"
    write_lossless_video(path, frames)
    return path, frames


def brute_force_kcenter(points: np.ndarray, grid, k: int, firsts, time_division: int = 1,
                        space_division: int = 1) -> list[int]:
    """Textbook farthest-point selection in float64, the oracle of the k-center tests: per time chunk of
    ``(T / time_division) * H' * W'`` points, start at ``firsts[chunk]`` and add the point farthest
    (Euclidean) from every chosen centre, recomputed from scratch each step; lowest index on ties. With
    ``space_division > 1`` a chosen point's spatial cell (of an sd x sd grid) is closed in its chunk.
    Returns flat indices into ``points (N, D)``, chunk by chunk in selection order."""
    t, h, w = grid
    n_chunk = (t // time_division) * h * w
    sd = space_division
    out = []
    for c in range(time_division):
        x = points[c * n_chunk:(c + 1) * n_chunk]
        cell = [((i % (h * w)) // w * sd // h) * sd + (i % w) * sd // w for i in range(n_chunk)]
        chosen = [int(firsts[c])]
        while len(chosen) < k // time_division:
            blocked = {cell[j] for j in chosen} if sd > 1 else set()
            best, best_d = None, -1.0
            for i in range(n_chunk):
                if i in chosen or cell[i] in blocked:
                    continue
                d = min(np.linalg.norm(x[i] - x[j]) for j in chosen)
                if d > best_d:
                    best, best_d = i, d
            chosen.append(best)
        out += [c * n_chunk + j for j in chosen]
    return out
