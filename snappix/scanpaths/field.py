"""The gravitational attention field of G-Eymol, computed once per frame for every gaze position.

In G-Eymol (Zanca, Melacci, Gori, IEEE TPAMI 2019, https://ieeexplore.ieee.org/document/8730418) the
pull on a gaze point ``a`` from channel ``i`` is

    C_i(a) = sum_x K(x - a) * m_i(x) / max_{x in W(a)} m_i(x)

over the ``n x n`` window ``W(a)`` centred on ``a`` (``n`` = :func:`window_size`, pixels outside the
frame count as 0 mass), with the kernel (:func:`gravity_kernel`)

    K(v) = (n // 10 + 1) * v / (|v|^2 + n // 10),      v = (row offset, column offset) in pixels.

The released code re-crops the window and re-sums it at every ODE evaluation. Here the numerator is
one cross-correlation of the mass with ``K`` per channel (FFT, :class:`GravityField`) and the
denominator one ``n x n`` maximum filter, so a frame gives a force map ``F = sum_i alpha_i C_i`` of
shape ``(2, h, w)`` and the dynamics only look it up (:func:`sample_force`). :func:`direct_force` is
the per-position sum, kept as the test oracle.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import maximum_filter

__all__ = ["window_size", "gravity_kernel", "GravityField", "direct_force", "sample_force", "LOOKUPS"]

#: how the force map is read at a real-valued gaze position
LOOKUPS = ("floor", "bilinear")


def window_size(height: int, width: int) -> int:
    """Side ``n`` of the square window (odd): ``max(h, w)`` if odd, else ``max(h, w) + 1`` (225 at 224 px)."""
    m = max(int(height), int(width))
    return m if m % 2 else m + 1


def gravity_kernel(n: int) -> np.ndarray:
    """The field kernel on an ``n x n`` window (``n`` odd).

    Returns:
        float64 ``(2, n, n)``: ``[0]`` the row component and ``[1]`` the column component of
        ``K(v) = (n // 10 + 1) * v / (|v|^2 + n // 10)`` at offset ``v = (i - n // 2, j - n // 2)``;
        0 at the centre.

    Raises:
        ValueError: ``n`` is not a positive odd integer.
    """
    if n <= 0 or n % 2 == 0:
        raise ValueError(f"window side must be a positive odd integer, got {n}")
    c = n // 2
    off = np.arange(n, dtype=np.float64) - c
    dr, dc = np.meshgrid(off, off, indexing="ij")
    denom = dr * dr + dc * dc + n // 10
    gain = n // 10 + 1
    with np.errstate(invalid="ignore", divide="ignore"):  # the centre when n < 10; set to 0 below
        k = np.stack([gain * dr / denom, gain * dc / denom])
    k[:, c, c] = 0.0
    return k


class GravityField:
    """Force maps for frames of one size: the kernel's spectrum is computed once at construction.

    Args:
        height, width: frame size in pixels (the working resolution).
        n: window side (odd); default :func:`window_size`.
        precision: ``float32`` (default) or ``float64``, the FFT's floating-point type; float32 changes the
            force by about 1e-6 of its size and runs about twice as fast.

    Raises:
        ValueError: non-positive size, an even ``n`` or an unknown ``precision``.
    """

    def __init__(self, height: int, width: int, n: int | None = None, precision: str = "float32"):
        if height <= 0 or width <= 0:
            raise ValueError(f"frame size must be positive, got {height}x{width}")
        if precision not in ("float32", "float64"):
            raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")
        self.height, self.width = int(height), int(width)
        self.dtype = np.dtype(precision)
        self.n = window_size(height, width) if n is None else int(n)
        if self.n <= 0 or self.n % 2 == 0:
            raise ValueError(f"window side must be a positive odd integer, got {self.n}")
        d = self.n // 2
        # offsets beyond the frame never pair two pixels: keep |offset| <= min(d, side - 1) per axis
        dr, dc = min(d, self.height - 1), min(d, self.width - 1)
        kernel = gravity_kernel(self.n)[:, d - dr:d + dr + 1, d - dc:d + dc + 1]
        # a circular correlation of period >= side + reach aliases no pixel pair
        self.shape = (sfft.next_fast_len(self.height + dr, real=True),
                      sfft.next_fast_len(self.width + dc, real=True))
        wrapped = np.zeros((2, *self.shape))
        rows = (-np.arange(-dr, dr + 1)) % self.shape[0]
        cols = (-np.arange(-dc, dc + 1)) % self.shape[1]
        wrapped[:, rows[:, None], cols[None, :]] = kernel  # entry at -offset: a correlation
        self._spectrum = sfft.rfft2(wrapped, axes=(-2, -1)).astype(np.result_type(self.dtype, np.complex64))

    def correlate(self, mass: np.ndarray) -> np.ndarray:
        """``sum_x K(x - a) m_c(x)`` for every pixel ``a`` and channel ``c``.

        Args:
            mass: float ``(C, h, w)``, the (gated) masses.

        Returns:
            ``(C, 2, h, w)`` of the field's precision: row and column components, unnormalised.
        """
        p_r, p_c = self.shape
        # the zero rows of the padded input and the rows past the frame in the output are skipped
        spec = sfft.fft(sfft.rfft(np.asarray(mass, self.dtype), n=p_c, axis=-1), n=p_r, axis=-2)
        rows = sfft.ifft(spec[:, None] * self._spectrum[None], axis=-2)[..., :self.height, :]
        return sfft.irfft(rows, n=p_c, axis=-1)[..., :self.width]

    def window_max(self, mass: np.ndarray) -> np.ndarray:
        """``max_{x in W(a)} m_c(x)`` for every pixel ``a``: ``(C, h, w)`` (0 outside the frame)."""
        return maximum_filter(np.asarray(mass), size=(1, self.n, self.n), mode="constant", cval=0.0)

    def force(self, mass: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """The weighted, window-normalised pull ``F(a) = sum_c alpha_c C_c(a)`` at every pixel.

        Args:
            mass: float ``(C, h, w)`` non-negative masses (gradient magnitude times ``1 - IOR``).
            alphas: ``(C,)`` channel weights.

        Returns:
            float64 ``(2, h, w)`` (computed in the field's precision): row and column acceleration at
            each integer gaze position, in pixels per frame^2. A channel whose window holds no mass
            contributes 0 there.

        Raises:
            ValueError: shapes do not match the field's frame size or the number of weights.
        """
        mass = np.asarray(mass, np.float64)
        alphas = np.asarray(alphas, np.float64)
        if mass.ndim != 3 or mass.shape[1:] != (self.height, self.width) or alphas.shape != (mass.shape[0],):
            raise ValueError(f"mass must be (C, {self.height}, {self.width}) with C weights, got {mass.shape} "
                             f"and {alphas.shape}")
        pull = self.correlate(mass)
        peak = self.window_max(mass)
        scale = np.divide(alphas[:, None, None], peak, out=np.zeros_like(peak), where=peak > 0)
        return np.einsum("cvhw,chw->vhw", pull, scale.astype(pull.dtype), optimize=False).astype(np.float64)


def direct_force(mass: np.ndarray, alphas: np.ndarray, row: int, col: int, n: int | None = None) -> np.ndarray:
    """The pull at one integer gaze position by direct summation over the window (test oracle).

    Args:
        mass: float ``(C, h, w)``; alphas: ``(C,)``; row, col: gaze pixel inside the frame;
        n: window side (default :func:`window_size`).

    Returns:
        float64 ``(2,)``: the row and column components of ``sum_c alpha_c C_c(row, col)``.
    """
    mass = np.asarray(mass, np.float64)
    c, h, w = mass.shape
    n = window_size(h, w) if n is None else n
    d = n // 2
    kernel = gravity_kernel(n)
    padded = np.pad(mass, ((0, 0), (d, d), (d, d)))
    out = np.zeros(2)
    for i in range(c):
        crop = padded[i, row:row + n, col:col + n]
        top = crop.max()
        if top > 0:
            out += alphas[i] * (kernel * (crop / top)).sum(axis=(1, 2))
    return out


def sample_force(force: np.ndarray, row: float, col: float, lookup: str = "floor") -> tuple[float, float]:
    """Read a ``(2, h, w)`` force map at a real-valued gaze position (pixels, row then column).

    ``floor``: the pixel holding the position, after clamping into the frame (what G-Eymol's code does:
    the window is centred on ``int(row), int(col)``); ``bilinear``: bilinear interpolation of the four
    neighbouring pixels, position clamped into ``[0, h - 1] x [0, w - 1]``. A NaN position reads pixel 0.

    Raises:
        ValueError: unknown ``lookup``.
    """
    h, w = force.shape[1:]
    row = 0.0 if row != row else min(max(row, 0.0), h - 1.0)
    col = 0.0 if col != col else min(max(col, 0.0), w - 1.0)
    if lookup == "floor":
        r, c = int(row), int(col)
        return float(force[0, r, c]), float(force[1, r, c])
    if lookup != "bilinear":
        raise ValueError(f"unknown lookup {lookup!r}; valid: {LOOKUPS}")
    r0, c0 = min(int(row), h - 2) if h > 1 else 0, min(int(col), w - 2) if w > 1 else 0
    fr, fc = row - r0, col - c0
    r1, c1 = min(r0 + 1, h - 1), min(c0 + 1, w - 1)
    patch = force[:, [r0, r0, r1, r1], [c0, c1, c0, c1]]
    weights = np.array([(1 - fr) * (1 - fc), (1 - fr) * fc, fr * (1 - fc), fr * fc])
    out = patch @ weights
    return float(out[0]), float(out[1])
