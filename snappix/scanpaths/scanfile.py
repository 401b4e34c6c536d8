"""``scan_idx_7/<video>.txt`` files: the scanpath format Saccade-VSSL reads.

One line per fixation, in scanpath order: three integers ``cell start_frame end_frame`` separated by a
space and ended by ``\\n``:

* ``cell`` in ``[0, grid^2)``: the row-major index ``gr * grid + gc`` of a cell of the ``grid x grid``
  (7 x 7) grid over the frame;
* ``start_frame <= end_frame``: 0-based indices of the video's frames (the reference indexes its sorted
  frame files with them), both inclusive.

The reference loads the file with ``np.loadtxt(...).astype(int)``, so its own files may hold floats
(``12.0``, ``1.2e+01``) and ``#`` comments; :func:`read_scanpath` accepts those when the value is an
integer. Note for the reference's loader (not for ours): ``np.loadtxt`` squeezes a one-line file to a
vector and fails on an empty one, so that loader needs at least 2 lines.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from snappix.errors import UserError

__all__ = ["ScanpathFormatError", "format_scanpath", "write_scanpath", "read_scanpath", "validate_rows"]


class ScanpathFormatError(UserError, ValueError):
    """A scanpath file or row is malformed; the message names the file and the 1-based line."""


def validate_rows(rows: np.ndarray, grid: int = 7, num_frames: int | None = None, source: str = "<rows>"
                  ) -> np.ndarray:
    """Check ``[cell, start, end]`` rows; returns them as int64 ``(N, 3)``.

    Raises:
        ScanpathFormatError: wrong shape, a cell outside ``[0, grid^2)``, a negative start, ``end < start``
            or (with ``num_frames``) ``end >= num_frames``; the message names ``source`` and the row (1-based).
    """
    arr = np.asarray(rows)
    if arr.size == 0:
        return np.zeros((0, 3), np.int64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ScanpathFormatError(f"{source}: rows must be (N, 3) [cell, start_frame, end_frame], got {arr.shape}")
    arr = arr.astype(np.int64)
    for i, (cell, start, end) in enumerate(arr.tolist(), start=1):
        _check_row(cell, start, end, grid, num_frames, f"{source}:{i}")
    return arr


def _check_row(cell: int, start: int, end: int, grid: int, num_frames: int | None, where: str) -> None:
    if not 0 <= cell < grid * grid:
        raise ScanpathFormatError(f"{where}: cell {cell} is outside [0, {grid * grid - 1}] ({grid}x{grid} grid)")
    if start < 0 or end < start:
        raise ScanpathFormatError(f"{where}: frame range {start}..{end} is invalid (need 0 <= start <= end)")
    if num_frames is not None and end >= num_frames:
        raise ScanpathFormatError(f"{where}: end frame {end} is past the video's last frame {num_frames - 1}")


def format_scanpath(rows: np.ndarray) -> str:
    """The file text of int ``(N, 3)`` rows: ``"cell start end\\n"`` per row (``""`` for no rows)."""
    return "".join(f"{int(c)} {int(s)} {int(e)}\n" for c, s, e in np.asarray(rows).reshape(-1, 3))


def write_scanpath(path: str | os.PathLike, rows: np.ndarray, grid: int = 7) -> None:
    """Validate ``rows`` and write them atomically (a temporary file in the same folder, then ``os.replace``).

    Raises:
        ScanpathFormatError: invalid rows (see :func:`validate_rows`).
        OSError: the folder cannot be created or written.
    """
    path = os.fspath(path)
    text = format_scanpath(validate_rows(rows, grid, source=path))
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _parse_int(token: str, where: str, name: str) -> int:
    try:
        value = float(token)
    except ValueError:
        raise ScanpathFormatError(f"{where}: {name} {token!r} is not a number") from None
    if not np.isfinite(value) or value != int(value):
        raise ScanpathFormatError(f"{where}: {name} {token!r} is not an integer")
    return int(value)


def read_scanpath(path: str | os.PathLike, grid: int = 7, num_frames: int | None = None) -> np.ndarray:
    """Read a ``scan_idx`` file (ours or the reference's).

    Args:
        path: the ``.txt`` file; whitespace-separated (spaces or tabs), blank lines and ``#`` comments skipped.
        grid: grid side (7); cells must lie in ``[0, grid^2)``.
        num_frames: when given, every end frame must be below it.

    Returns:
        int64 ``(N, 3)`` ``[cell, start_frame, end_frame]`` rows in file order; ``(0, 3)`` for an empty file.

    Raises:
        FileNotFoundError: no such file.
        ScanpathFormatError: a line without exactly 3 fields, a non-integer field, a bad cell or frame range;
            the message names the file and the 1-based line.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"scanpath file not found: {path}")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    rows = []
    for i, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        where = f"{path}:{i}"
        fields = text.split()
        if len(fields) != 3:
            hint = " (fields are separated by whitespace, not commas)" if "," in text else ""
            raise ScanpathFormatError(f"{where}: expected 3 fields 'cell start_frame end_frame', got {text!r}{hint}")
        cell, start, end = (_parse_int(t, where, n) for t, n in zip(fields, ("cell", "start_frame", "end_frame")))
        _check_row(cell, start, end, grid, num_frames, where)
        rows.append((cell, start, end))
    return np.asarray(rows, np.int64).reshape(-1, 3)
