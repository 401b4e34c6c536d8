"""G-Eymol on a stream of video frames: one gaze position per frame, seeded and deterministic.

Zanca, Melacci, Gori, "Gravitational Laws of Focus of Attention", IEEE TPAMI 2019,
https://ieeexplore.ieee.org/document/8730418.

Per frame (``docs/methods/saccade.md``, "Scanpaths (G-Eymol)"): feature channels and their gradient
masses (:mod:`~snappix.scanpaths.features`), gated by ``1 - IOR``; one force map for every gaze position
(:class:`~snappix.scanpaths.field.GravityField`); the gaze ODE over the frame
(:func:`~snappix.scanpaths.dynamics.integrate_frame`); the position truncated to integer pixels and kept
``border`` pixels inside; every ``int(fps / 3)`` frames an IOR update
(:func:`~snappix.scanpaths.ior.update_ior`). Given the same frames, parameters and seed the gaze path is
the same (NumPy's PCG64 draws the start; nothing else is random).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .dynamics import force_lookup, initial_state, integrate_frame
from .features import NUM_BASE_CHANNELS, feature_maps, gradient_mass, motion_channel, resize_frame, to_grey, \
    working_size
from .field import LOOKUPS, GravityField
from .ior import clamp_inside, ior_period, update_ior

__all__ = ["GEymolParams", "GEymol", "simulate_gaze"]


@dataclass(frozen=True)
class GEymolParams:
    """Parameters of the gaze model; the defaults are those of the released G-Eymol code.

    Attributes:
        long_side: frames are resized so their longer side has this many pixels (224).
        alpha: total weight of the 8 base channels, split equally (0.2 -> 0.025 each).
        dissipation: velocity damping of the ODE (1.5 per frame).
        step, points: ODE output grid ``t + step * k``, ``k < points`` (0.1, 10).
        rtol, atol, mxstep: ``odeint`` tolerances (0.1, 0.1) and step limit (100).
        ior_decay, ior_radius: IOR update ``min(decay * IOR + blob, 1)`` (0.9), blob radius in px (35).
        saccades_per_second: IOR updates per second of video (3.0).
        border: the gaze is kept this many pixels inside the frame after each frame (5).
        init_spread: start within ``+- int(min(h, w) * init_spread)`` px of the centre (0.17).
        motion: add a Farneback flow-magnitude channel (off; the released code has none).
        motion_alpha: weight of the motion channel (0.025, one base channel's weight).
        lookup: how the force map is read between pixels: ``floor`` (the released code's pixel
            truncation) or ``bilinear``.
    """

    long_side: int = 224
    alpha: float = 0.2
    dissipation: float = 1.5
    step: float = 0.1
    points: int = 10
    rtol: float = 0.1
    atol: float = 0.1
    mxstep: int = 100
    ior_decay: float = 0.9
    ior_radius: int = 35
    saccades_per_second: float = 3.0
    border: int = 5
    init_spread: float = 0.17
    motion: bool = False
    motion_alpha: float = 0.025
    lookup: str = "floor"

    def __post_init__(self):
        if self.lookup not in LOOKUPS:
            raise ValueError(f"lookup must be one of {LOOKUPS}, got {self.lookup!r}")
        if self.long_side < 8 or self.points < 2 or self.step <= 0 or self.dissipation < 0:
            raise ValueError(f"invalid G-Eymol parameters: {self}")

    def alphas(self) -> np.ndarray:
        """float64 ``(C,)`` channel weights: 8 x ``alpha / 8``, then ``motion_alpha`` when ``motion``."""
        base = [self.alpha / NUM_BASE_CHANNELS] * NUM_BASE_CHANNELS
        return np.array(base + ([self.motion_alpha] if self.motion else []), np.float64)


class GEymol:
    """The gaze model of one video: call :meth:`step` with each frame in order.

    Args:
        height, width: working frame size in pixels (frames passed to :meth:`step` have this size).
        fps: frames per second of the video (sets the IOR period, ``int(fps / 3)`` frames).
        params: :class:`GEymolParams`.
        seed: seed of the start state (an int or a :class:`numpy.random.SeedSequence`).

    Attributes:
        state: float64 ``(4,)`` ``(row, col, row velocity, col velocity)``.
        ior: float64 ``(h, w)`` inhibition-of-return map in [0, 1].
        evaluations: total right-hand-side evaluations of the ODE so far.
    """

    def __init__(self, height: int, width: int, fps: float = 25.0, params: GEymolParams | None = None,
                 seed: int | np.random.SeedSequence = 0):
        self.params = params or GEymolParams()
        self.height, self.width = int(height), int(width)
        self.period = ior_period(fps, self.params.saccades_per_second)
        self.field = GravityField(self.height, self.width)
        self.alphas = self.params.alphas()
        self.state = initial_state(self.height, self.width, np.random.default_rng(seed), self.params.init_spread)
        self.ior = np.zeros((self.height, self.width), np.float64)
        self._gate = (1.0 - self.ior).astype(np.float32)
        self.t = 0
        self.evaluations = 0
        self._prev_grey = None

    def masses(self, frame_bgr: np.ndarray) -> np.ndarray:
        """float32 ``(C, h, w)`` gated masses of one working-size BGR uint8 frame (C = 8, or 9 with motion).

        In float32, the precision of the field's FFT (the Sobel derivatives, their magnitude and the gate).
        """
        maps = feature_maps(frame_bgr)
        mass = np.empty((len(self.alphas), self.height, self.width), np.float32)
        for i, m in enumerate(maps):
            mass[i] = gradient_mass(m, np.float32)
        if self.params.motion:
            grey = to_grey(frame_bgr)
            mass[len(maps)] = motion_channel(self._prev_grey, grey)
            self._prev_grey = grey
        mass *= self._gate
        return mass

    def step(self, frame_bgr: np.ndarray) -> tuple[int, int]:
        """Move the gaze over one frame.

        Args:
            frame_bgr: uint8 ``(h, w, 3)`` BGR frame at the working size.

        Returns:
            ``(row, col)``: the integer gaze pixel after the frame, ``border`` pixels inside.

        Raises:
            ValueError: the frame is not uint8 ``(h, w, 3)`` of the model's size.
        """
        if frame_bgr.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {frame_bgr.shape[:2]}, the model was built for {(self.height, self.width)}")
        p = self.params
        force = self.field.force(self.masses(frame_bgr), self.alphas)
        y, n_eval = integrate_frame(force_lookup(force, p.lookup), self.state, self.t, p.dissipation, p.step,
                                    p.points, p.rtol, p.atol, p.mxstep)
        self.evaluations += n_eval
        self.t += 1
        row, col = clamp_inside(y[0], y[1], self.height, self.width, p.border)
        y[0], y[1] = row, col
        self.state = y
        if self.t % self.period == 0:
            self.ior = update_ior(self.ior, row, col, p.ior_radius, p.ior_decay)
            self._gate = (1.0 - self.ior).astype(np.float32)
        return row, col


def simulate_gaze(frames: Iterable[np.ndarray], fps: float = 25.0, params: GEymolParams | None = None,
                  seed: int | np.random.SeedSequence = 0, max_frames: int | None = None
                  ) -> tuple[np.ndarray, tuple[int, int]]:
    """Gaze path of a frame sequence, in the frames' own pixel coordinates.

    Args:
        frames: uint8 ``(H, W, 3)`` BGR frames of one size (any iterable; read lazily).
        fps: frames per second; params: :class:`GEymolParams`; seed: start-state seed.
        max_frames: stop after this many frames (None: all).

    Returns:
        ``(gaze, (H, W))``: float64 ``(T, 2)`` (row, col) per frame, scaled from the working resolution
        back to the source size (``row * H / h``), and the source size; ``(0, 2)`` for no frames.

    Raises:
        ValueError: frames of different sizes, or not uint8 ``(H, W, 3)``.
    """
    params = params or GEymolParams()
    model, size, out = None, (0, 0), []
    for i, frame in enumerate(frames):
        if max_frames is not None and i >= max_frames:
            break
        if model is None:
            size = frame.shape[:2]
            model = GEymol(*working_size(*size, params.long_side), fps=fps, params=params, seed=seed)
        elif frame.shape[:2] != size:
            raise ValueError(f"frame {i} is {frame.shape[:2]}, the first frame was {size}")
        out.append(model.step(resize_frame(frame, (model.height, model.width))))
    if model is None:
        return np.zeros((0, 2)), size
    gaze = np.asarray(out, np.float64)
    gaze[:, 0] *= size[0] / model.height
    gaze[:, 1] *= size[1] / model.width
    return gaze, size
