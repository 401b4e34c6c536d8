"""The gravitational attention field of G-Eymol, computed once per frame for every gaze position.

In G-Eymol (Zanca, Melacci, Gori, IEEE TPAMI 2019, https://ieeexplore.ieee.org/document/8730418) the
pull on a gaze point ``a`` from channel ``i`` is

    C_i(a) = sum_x K(x - a) * m_i(x) / max_{x in W(a)} m_i(x)

over the ``n x n`` window ``W(a)`` centred on ``a`` (``n`` = :func:`window_size`, pixels outside the
frame count as 0 mass), with the kernel (:func:`gravity_kernel`)

    K(v) = (n // 10 + 1) * v / (|v|^2 + n // 10),      v = (row offset, column offset) in pixels.

The released code re-crops the window and re-sums it at every ODE evaluation. Here the numerator is
one cross-correlation of the mass with ``K`` per channel (real DFTs, :class:`GravityField`) and the
denominator one exact ``n x n`` sliding maximum (:func:`sliding_max`), so a frame gives a force map
``F = sum_i alpha_i C_i`` of shape ``(2, h, w)`` and the dynamics only look it up (:func:`sample_force`).
:func:`direct_force` is the per-position sum, kept as the test oracle.

Each channel needs its own two inverse DFTs: its weight ``alpha_i / max_{W(a)} m_i`` varies with ``a``
(the window moves with the gaze and does not cover the frame everywhere), so the channels' spectra
cannot be summed before one inverse transform. Per frame of C channels: C forward and 2 C inverse
DFTs; the kernel's spectrum is computed once per field (one field per video and frame size).
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.fft as sfft

__all__ = ["window_size", "gravity_kernel", "GravityField", "direct_force", "sample_force", "sliding_max", "LOOKUPS"]

#: how the force map is read at a real-valued gaze position
LOOKUPS = ("floor", "bilinear")
_INVERSE = cv2.DFT_INVERSE | cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE


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

    The DFTs are OpenCV's (``cv2.dft``, packed real spectra, one thread as OpenCV is configured), the
    padded size :func:`scipy.fft.next_fast_len`'s; scratch buffers are kept between frames. Not
    thread-safe: one field per thread (the CLI runs one video per process).

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
        # OpenCV's packed (CCS) real spectrum, computed in float64 once for every frame of this size
        self._spectrum = [cv2.dft(k).astype(self.dtype) for k in wrapped]
        self._work: dict = {}  # scratch buffers (DFTs, sliding_max), reused frame after frame

    def _scratch(self, name: str, shape: tuple, dtype=None) -> np.ndarray:
        """A buffer kept for the next frames (fresh multi-megabyte arrays cost page faults at every frame)."""
        key = (name, shape, np.dtype(dtype or self.dtype))
        buf = self._work.get(key)
        if buf is None:
            buf = self._work[key] = np.zeros(shape, key[2])
        return buf

    def _transform(self, channel: np.ndarray) -> np.ndarray:
        """OpenCV's packed real spectrum of one ``(h, w)`` channel zero-padded to :attr:`shape`, in place in a
        scratch buffer (valid until the next call); the zero rows of the input are skipped (``nonzeroRows``)."""
        h, w = self.height, self.width
        spec = self._scratch("spectrum", self.shape)
        spec[:h, :w] = channel
        spec[:h, w:] = 0
        spec[h:] = 0
        return cv2.dft(spec, spec, 0, h)

    def _pull(self, spec: np.ndarray, component: int) -> np.ndarray:
        """Component ``component`` (0: row, 1: column) of ``sum_x K(x - a) m(x)`` from the channel's spectrum.

        The product with the kernel's spectrum and the inverse DFT (only the frame's rows) in one scratch
        buffer: returns an ``(h, w)`` view of it, valid until the next call.
        """
        out = self._scratch("pull", self.shape)
        cv2.mulSpectrums(spec, self._spectrum[component], 0, out)
        cv2.dft(out, out, _INVERSE, self.height)
        return out[:self.height, :self.width]

    def correlate(self, mass: np.ndarray) -> np.ndarray:
        """``sum_x K(x - a) m_c(x)`` for every pixel ``a`` and channel ``c``.

        Args:
            mass: float ``(C, h, w)``, the (gated) masses.

        Returns:
            ``(C, 2, h, w)`` of the field's precision: row and column components, unnormalised.
        """
        mass = np.asarray(mass, self.dtype)
        out = np.zeros((len(mass), 2, self.height, self.width), self.dtype)
        for c, channel in enumerate(mass):
            spec = self._transform(channel)
            for v in range(2):
                out[c, v] = self._pull(spec, v)  # a view into one buffer: copied before the next
        return out

    def _window_max(self, channel: np.ndarray) -> np.ndarray:
        """``(h, w)`` window maximum of one channel: along the rows, then along the transposed columns."""
        down = sliding_max(channel, self.n, axis=0, work=self._work)
        return cv2.transpose(sliding_max(cv2.transpose(down), self.n, axis=0, work=self._work))

    def window_max(self, mass: np.ndarray) -> np.ndarray:
        """``max_{x in W(a)} m_c(x)`` for every pixel ``a``: ``(C, h, w)`` (0 outside the frame).

        Exact, in ``mass``'s dtype: a sliding maximum (:func:`sliding_max`) along the rows, then along the
        columns, one channel at a time (the buffers stay in cache).
        """
        mass = np.asarray(mass)
        out = np.empty_like(mass)
        for c, channel in enumerate(mass):
            out[c] = self._window_max(channel)
        return out

    def force(self, mass: np.ndarray, alphas: np.ndarray) -> np.ndarray:
        """The weighted, window-normalised pull ``F(a) = sum_c alpha_c C_c(a)`` at every pixel.

        One channel at a time: its window maximum and its pull in the field's precision, the pull scaled
        by ``alpha_c / max`` (computed in float64, then rounded) and added to ``F``.

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
        mass = np.asarray(mass, self.dtype)
        alphas = np.asarray(alphas, np.float64)
        if mass.ndim != 3 or mass.shape[1:] != (self.height, self.width) or alphas.shape != (mass.shape[0],):
            raise ValueError(f"mass must be (C, {self.height}, {self.width}) with C weights, got {mass.shape} "
                             f"and {alphas.shape}")
        out = np.zeros((2, self.height, self.width), self.dtype)
        for channel, alpha in zip(mass, alphas):
            peak = self._window_max(channel)
            scale = np.zeros(peak.shape, np.float64)
            np.divide(alpha, peak, out=scale, where=peak > 0)  # alpha: a NumPy float64, so a float64 division
            scale = scale.astype(self.dtype)
            spec = self._transform(channel)
            for v, acc in enumerate(out):
                acc += self._pull(spec, v) * scale
        return out.astype(np.float64)


def sliding_max(a: np.ndarray, n: int, axis: int = -1, work: dict | None = None) -> np.ndarray:
    """Maximum over ``n`` (odd) consecutive entries centred on each entry along ``axis``, 0 beyond the ends.

    ``out[i] = max(a[i - n // 2:i + n // 2 + 1])`` along ``axis`` with entries past the ends counting as 0,
    exact (:func:`scipy.ndimage.maximum_filter` with ``mode="constant", cval=0``). By doubling: after
    ``k`` passes entry ``i`` holds the maximum of the ``2^k`` entries from ``i`` (``2^k <= n``), and two such
    spans cover a window: about ``log2(n) + 1`` vectorised ``np.maximum`` passes between two buffers in
    which ``axis`` is the leading axis (fastest when it already leads: each pass is one contiguous run).

    Args:
        a: array of any real dtype; n: window length (odd); axis: the axis to slide along.
        work: optional cache of the two scratch buffers, keyed by shape and dtype (reused by later calls:
            fresh multi-megabyte buffers cost more in page faults than the passes themselves).

    Returns:
        the same shape and dtype as ``a`` (a view with ``axis`` moved back into place).
    """
    a = np.asarray(a)
    axis %= a.ndim
    if axis:
        a = np.moveaxis(a, axis, 0)
    d, length = n // 2, a.shape[0]
    size = length + 2 * d
    key = ("sliding_max", (size, *a.shape[1:]), a.dtype)
    bufs = work.get(key) if work is not None else None
    if bufs is None:
        bufs = (np.zeros(key[1], a.dtype), np.empty(key[1], a.dtype))
        if work is not None:
            work[key] = bufs
    cur, spare = bufs
    cur[:d], cur[d + length:] = 0, 0
    cur[d:d + length] = a
    span = 1
    while 2 * span <= n:
        size -= span  # entries [0, size) of cur hold maxima over 2 * span
        np.maximum(cur[:size], cur[span:size + span], out=spare[:size])
        cur, spare, span = spare, cur, 2 * span
    out = np.maximum(cur[:length], cur[n - span:n - span + length])
    return np.moveaxis(out, 0, axis) if axis else out


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
