"""A small labelled synthetic video dataset, written as real encoded video files.

Each clip shows a textured square moving over a textured, noisy background; the class is the
direction of motion (8 compass directions, 45 degrees apart), so a single frame cannot tell the
classes apart. Deterministic given the seed. Used by the quickstart and the tests when no real
dataset is at hand.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np

DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")


def render_clip(label: int, num_frames: int = 48, height: int = 128, width: int = 160,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Frames of one clip whose square moves in direction ``DIRECTIONS[label]``.

    Returns:
        uint8 RGB ``(num_frames, height, width, 3)``.
    """
    rng = rng if rng is not None else np.random.default_rng()
    if not 0 <= label < len(DIRECTIONS):
        raise ValueError(f"label must be in [0, {len(DIRECTIONS)}), got {label}")
    background = rng.integers(40, 140, (height + 16, width + 16, 3)).astype(np.float32)
    size = int(rng.integers(height // 5, height // 3))
    texture = rng.integers(120, 255, (size, size, 3)).astype(np.float32)
    angle = label * math.pi / 4
    speed = rng.uniform(1.0, 2.0)
    dx, dy = speed * math.cos(angle), -speed * math.sin(angle)
    travel_x, travel_y = dx * (num_frames - 1), dy * (num_frames - 1)
    x0 = rng.uniform(max(0, -travel_x), max(1, width - size - max(0, travel_x)))
    y0 = rng.uniform(max(0, -travel_y), max(1, height - size - max(0, travel_y)))
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        ox, oy = (t // 8) % 3, (t // 12) % 3  # slight background drift
        frame = background[oy:oy + height, ox:ox + width].copy()
        x = int(np.clip(round(x0 + dx * t), 0, width - size))
        y = int(np.clip(round(y0 + dy * t), 0, height - size))
        frame[y:y + size, x:x + size] = texture
        frame += rng.normal(0, 4, frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def write_video(path: str, frames: np.ndarray, fps: int = 25) -> None:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` as H.264 (crf 18, yuv420p) with PyAV."""
    import av

    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_dataset(out_dir: str, num_videos: int = 32, seed: int = 0, num_frames: int = 48,
                 val_fraction: float = 0.25) -> dict[str, str]:
    """Write ``num_videos`` clips (classes balanced) plus ``train.csv`` / ``val.csv`` (``path label``)
    and ``pretrain.csv`` (``path 0 -1``, the training clips) into ``out_dir``.

    Returns:
        the paths of the three lists.
    """
    from .lists import write_list

    os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(num_videos):
        label = i % len(DIRECTIONS)
        rel = f"videos/{i:04d}_{DIRECTIONS[label]}.mp4"
        write_video(os.path.join(out_dir, rel), render_clip(label, num_frames, rng=rng))
        rows.append((rel, label))
    num_val = max(1, int(round(num_videos * val_fraction)))
    train, val = rows[:-num_val], rows[-num_val:]
    lists = {name: os.path.join(out_dir, f"{name}.csv") for name in ("train", "val", "pretrain")}
    write_list(lists["train"], train, "cls")
    write_list(lists["val"], val, "cls")
    write_list(lists["pretrain"], [(r, 0, -1) for r, _ in train], "pretrain")
    return lists
