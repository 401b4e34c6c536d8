"""The embedded dataset: labelled synthetic videos in which only motion tells the classes apart.

Each clip shows 6-10 textured objects (disc, square, triangle, ring or diamond; checker, stripes,
blobs, gradient or noise texture; 14-30 % of the frame height; now and then dark on bright) crossing a
textured background that drifts slowly in a random direction. All objects of a clip move the same way
at 1-2 px per frame; the class is that direction of motion, one of
:data:`DIRECTIONS` (8 compass directions, 45 degrees apart, with +-10 degrees of jitter), so:

* a single frame cannot tell the classes apart (position, shape, texture, size, brightness and
  background are drawn independently of the label);
* a long exposure (the mean over time, symmetric in time) shows the axis of the motion as a streak
  but cannot tell opposite directions apart (E from W, NE from SW, ...): at best 4 of the 8 classes;
* 16 frames, or a coded exposure that time-stamps the pixels of each tile, can.

Frames pass through a simple sensor model (per-clip exposure gain and offset, slow flicker, shot-like
noise proportional to sqrt(intensity) plus read noise) and are encoded as H.264 with PyAV
(:func:`snappix.data.video_writer.write_video`). The data
are a function of the seed alone: clip ``i`` of seed ``s`` is rendered with
``numpy.random.default_rng([s, i])`` so adding clips never changes the existing ones.

Two variants for other demos (:func:`make_dataset` ``classes="shape"``, ``plain=True``): the class can be
the objects' shape instead (5 classes; the direction of motion is then random), and the textures can be
replaced by flat grey levels.

``make_dataset`` writes ``videos/NNNN_<DIR>.mp4`` plus ``train.csv`` / ``val.csv`` (``path label``,
balanced classes, the last ``val_fraction`` of each class held out), ``pretrain.csv`` and
``pretrain_val.csv`` (``path 0 -1``: the training / validation clips) and ``classes.txt``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .video_writer import write_video

DIRECTIONS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
SHAPES = ("disc", "square", "triangle", "ring", "diamond")
TEXTURES = ("checker", "stripes", "blobs", "gradient", "noise")


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Band-limited noise in [0, 1], float32 ``(height, width)``: a coarse random grid, bilinearly upsampled."""
    gh, gw = height // cell + 2, width // cell + 2
    grid = rng.random((gh, gw)).astype(np.float32)
    ys = np.arange(height, dtype=np.float32) / cell
    xs = np.arange(width, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx).astype(np.float32)


def _texture(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A procedural texture, float32 ``(size, size, 3)`` in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "checker":
        cell = int(rng.integers(3, 8))
        base = (((yy // cell) + (xx // cell)) % 2).astype(np.float32)
    elif kind == "stripes":
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(4, 10)
        base = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period)
    elif kind == "blobs":
        base = _smooth_noise(rng, size, size, int(rng.integers(3, 7)))
    elif kind == "gradient":
        theta = rng.uniform(0, 2 * math.pi)
        base = (xx * math.cos(theta) + yy * math.sin(theta))
        base = (base - base.min()) / max(float(np.ptp(base)), 1e-6)
    elif kind == "noise":
        base = rng.random((size, size)).astype(np.float32)
    else:
        raise ValueError(f"unknown texture {kind!r}; valid: {TEXTURES}")
    low, high = rng.uniform(0.45, 0.7), rng.uniform(0.8, 1.0)
    tint = rng.uniform(0.75, 1.0, 3).astype(np.float32)
    return ((low + (high - low) * base)[..., None] * tint).astype(np.float32)


def _shape_mask(size: int, kind: str) -> np.ndarray:
    """Alpha of a shape filling a ``size x size`` box, float32 in {0, 1}."""
    r = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = yy - r, xx - r
    if kind == "disc":
        m = dx ** 2 + dy ** 2 <= r ** 2
    elif kind == "square":
        m = np.ones((size, size), bool)
    elif kind == "triangle":
        m = (yy >= size * 0.1) & (np.abs(dx) <= (yy + 1) * 0.5)
    elif kind == "ring":
        d2 = dx ** 2 + dy ** 2
        m = (d2 <= r ** 2) & (d2 >= (0.45 * r) ** 2)
    elif kind == "diamond":
        m = np.abs(dx) + np.abs(dy) <= r
    else:
        raise ValueError(f"unknown shape {kind!r}; valid: {SHAPES}")
    return m.astype(np.float32)


def render_clip(label: int, num_frames: int = 48, height: int = 120, width: int = 160,
                rng: np.random.Generator | None = None, speed: tuple[float, float] = (1.0, 2.0),
                num_objects: tuple[int, int] = (6, 10), shape: str | None = None,
                object_size: tuple[float, float] = (0.14, 0.30), plain: bool = False) -> np.ndarray:
    """Frames of one clip whose objects move in direction ``DIRECTIONS[label]``.

    Args:
        label: class index in ``[0, 8)``; the motion angle is ``label * 45`` degrees (counter-clockwise
            from east, image y pointing up) (N = up the screen) plus uniform jitter of +-10 degrees, shared by all objects.
        shape: one of :data:`SHAPES` for every object of the clip (the ``shape`` classes of
            :func:`make_dataset`); ``None``: each object's shape drawn at random. The random draws are the
            same either way, so a clip differs from its ``shape=None`` twin only in its objects' outlines.
        num_frames, height, width: clip size.
        object_size: range of the objects' side as a share of the height (at least 12 px).
        plain: flat background and flat objects (each the mean of its texture): the same draws, no texture.
        rng: the generator (all randomness comes from it).
        speed: range of the clip's speed in pixels per frame (each object +-15 % around it).
        num_objects: inclusive range of the number of objects; each is placed uniformly in the frame
            at the middle frame, so objects enter and leave over the clip.

    Returns:
        uint8 RGB ``(num_frames, height, width, 3)``.

    Raises:
        ValueError: label out of range, or a frame smaller than 24 px.
    """
    rng = rng if rng is not None else np.random.default_rng()
    if not 0 <= label < len(DIRECTIONS):
        raise ValueError(f"label must be in [0, {len(DIRECTIONS)}), got {label}")
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; valid: {SHAPES}")
    if min(height, width) < 24:
        raise ValueError(f"frames must be at least 24 px, got {height}x{width}")
    # background: two octaves of smooth noise, tinted, larger than the frame so it can drift
    pad = int(math.ceil(0.3 * num_frames)) + 2
    bh, bw = height + 2 * pad, width + 2 * pad
    back = 0.6 * _smooth_noise(rng, bh, bw, int(rng.integers(12, 28))) + 0.4 * _smooth_noise(rng, bh, bw, 4)
    back = (rng.uniform(0.15, 0.35) + rng.uniform(0.2, 0.4) * back)[..., None] * rng.uniform(0.8, 1.0, 3)
    back = back.astype(np.float32)
    if plain:
        back = np.broadcast_to(back.mean((0, 1)), back.shape).copy()
    drift_angle = rng.uniform(0, 2 * math.pi)
    drift = rng.uniform(0.05, 0.25)
    bdx, bdy = drift * math.cos(drift_angle), drift * math.sin(drift_angle)

    angle = math.radians(label * 45 + rng.uniform(-10, 10))
    v = rng.uniform(*speed)
    half = (num_frames - 1) / 2
    objects = []
    for _ in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        low, high = object_size
        size = int(rng.integers(max(12, int(low * height)), max(13, int(high * height)) + 1))
        drawn = SHAPES[int(rng.integers(len(SHAPES)))]
        alpha = _shape_mask(size, shape or drawn)
        texture = _texture(rng, size, TEXTURES[int(rng.integers(len(TEXTURES)))])
        if rng.random() < 0.3:  # a dark object on the brighter background now and then
            texture = 0.45 - 0.35 * texture
        if plain:
            texture = np.broadcast_to(texture.mean((0, 1)), texture.shape).copy()
        ov = v * rng.uniform(0.85, 1.15)  # all objects share the direction; speeds differ a little
        dx, dy = ov * math.cos(angle), -ov * math.sin(angle)
        # position at the middle frame anywhere in the frame; the path extends both ways from there
        mid_x, mid_y = rng.uniform(0, width) - size / 2, rng.uniform(0, height) - size / 2
        objects.append((size, alpha, texture, mid_x - dx * half, mid_y - dy * half, dx, dy))

    gain, offset = rng.uniform(0.7, 1.25), rng.uniform(-0.04, 0.06)
    flicker_amp, flicker_period = rng.uniform(0.0, 0.04), rng.uniform(8, 30)
    read_noise, shot = rng.uniform(0.006, 0.02), rng.uniform(0.01, 0.03)

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        ox = int(round(pad + bdx * (t - half)))
        oy = int(round(pad + bdy * (t - half)))
        frame = back[oy:oy + height, ox:ox + width].copy()
        for size, alpha, texture, x_start, y_start, dx, dy in objects:
            x, y = int(round(x_start + dx * t)), int(round(y_start + dy * t))
            x0, y0 = max(x, 0), max(y, 0)
            x1, y1 = min(x + size, width), min(y + size, height)
            if x1 > x0 and y1 > y0:
                a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
                region = frame[y0:y1, x0:x1]
                frame[y0:y1, x0:x1] = region * (1 - a) + texture[y0 - y:y1 - y, x0 - x:x1 - x] * a
        level = gain * (1 + flicker_amp * math.sin(2 * math.pi * t / flicker_period)) * frame + offset
        level = np.clip(level, 0, 1)
        level = level + rng.normal(0, 1, level.shape).astype(np.float32) * (shot * np.sqrt(level) + read_noise)
        frames[t] = np.clip(level * 255 + 0.5, 0, 255).astype(np.uint8)
    return frames


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of dataset ``seed`` (independent of how many clips are made)."""
    return np.random.default_rng([seed, index])


CLASSES = {"direction": DIRECTIONS, "shape": SHAPES}
SHAPE_OBJECT_SIZE = (0.30, 0.45)  # the shape classes: 3-5 objects of 30-45 % of the height
SHAPE_NUM_OBJECTS = (3, 5)


def _write_clip(job: tuple[str, int, int, int, int, int, str, bool]) -> tuple[str, int]:
    """Render and encode clip ``index`` (atomic: a temporary name, then rename)."""
    out_dir, seed, index, num_frames, height, width, classes, plain = job
    names = CLASSES[classes]
    label = index % len(names)
    extra = {"plain": plain}
    if classes == "direction":
        direction = label
    else:  # the direction from a generator of its own; fewer, larger objects so that outlines survive 32-px inputs
        direction = int(np.random.default_rng([seed, index, 1]).integers(len(DIRECTIONS)))
        extra.update(shape=names[label], object_size=SHAPE_OBJECT_SIZE, num_objects=SHAPE_NUM_OBJECTS)
    rel = f"videos/{index:04d}_{names[label]}.mp4"
    final = os.path.join(out_dir, rel)
    tmp = final + ".part.mp4"
    write_video(tmp, render_clip(direction, num_frames, height, width, rng=clip_rng(seed, index), **extra))
    os.replace(tmp, final)
    return rel, label


def make_dataset(out_dir: str, num_videos: int = 32, seed: int = 0, num_frames: int = 32,
                 val_fraction: float = 0.25, height: int = 120, width: int = 160,
                 progress: bool = False, workers: int = 1, classes: str = "direction",
                 plain: bool = False) -> dict[str, str]:
    """Write ``num_videos`` clips (classes balanced: clip ``i`` has label ``i % n_classes``) and the lists.

    Args:
        classes: ``"direction"`` (the default: 8 directions of motion, each object's shape at random) or
            ``"shape"`` (5 classes, :data:`SHAPES`: every object of a clip has the class's shape and the
            clip's direction of motion is drawn at random; 3-5 objects of 30-45 % of the height; textures and
            background as for directions).
        plain: flat background and flat objects (:func:`render_clip`).
        out_dir: created if needed; clips go to ``out_dir/videos``. Existing clips of the same name
            are rewritten (the output is deterministic, so this is idempotent).
        val_fraction: share of each class held out for ``val.csv`` (the last clips of each class; at
            least one per class with two or more clips when ``val_fraction > 0``).
        progress: show a tqdm bar.
        workers: processes rendering and encoding clips (the output does not depend on it).

    Returns:
        ``{"train", "val", "pretrain", "pretrain_val", "classes"}`` -> file path.

    Raises:
        ValueError: fewer clips than classes, or unknown ``classes``.
    """
    from .lists import write_lines, write_list

    if classes not in CLASSES:
        raise ValueError(f"unknown classes {classes!r}; valid: {tuple(CLASSES)}")
    names = CLASSES[classes]
    if num_videos < len(names):
        raise ValueError(f"need at least {len(names)} videos (one per class), got {num_videos}")
    os.makedirs(os.path.join(out_dir, "videos"), exist_ok=True)
    jobs = [(out_dir, seed, i, num_frames, height, width, classes, plain) for i in range(num_videos)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_videos, desc="synthetic clips", unit="clip")
    rows = []
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for row in pool.imap(_write_clip, jobs, chunksize=4):
                rows.append(row)
                if bar is not None:
                    bar.update()
    else:
        for job in jobs:
            rows.append(_write_clip(job))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    per_class: dict[int, list] = {}
    for row in rows:
        per_class.setdefault(row[1], []).append(row)
    train, val = [], []
    for label in sorted(per_class):
        items = per_class[label]
        n_val = max(1, int(round(len(items) * val_fraction))) if len(items) > 1 and val_fraction > 0 else 0
        train += items[:len(items) - n_val]
        val += items[len(items) - n_val:]
    train.sort()
    val.sort()
    lists = {name: os.path.join(out_dir, f"{name}.csv") for name in ("train", "val", "pretrain")}
    write_list(lists["train"], train, "cls")
    write_list(lists["val"], val, "cls")
    write_list(lists["pretrain"], [(r, 0, -1) for r, _ in train], "pretrain")
    lists["pretrain_val"] = os.path.join(out_dir, "pretrain_val.csv")
    write_list(lists["pretrain_val"], [(r, 0, -1) for r, _ in val], "pretrain")
    lists["classes"] = os.path.join(out_dir, "classes.txt")
    write_lines(lists["classes"], list(names))
    return lists
