"""The data doctor, one row at a time: is a list row's video (or frame folder) there and readable?

:func:`check_entry` checks that the path exists and has the right kind (a file for video rows, a
folder for frame rows), is non-empty, opens, and has a readable frame count and fps. With
``deep=True`` every frame the row uses is decoded (in chunks of :data:`DEEP_CHUNK`), so a truncated
or corrupt tail is found whatever clip dense sampling picks. A video with fewer than ``num_frames``
frames is a warning (status ``short``): the samplers repeat frames, so the row stays usable.

:func:`read_rows` reads a list file for checking: a malformed row becomes a result (``malformed``)
instead of stopping the run. Whole lists (workers, resume, report files):
:mod:`snappix.data.check_list`. The command line is ``python -m snappix.tools.check_data``
(``docs/reliability.md``).
"""

from __future__ import annotations

import os

from snappix.data.lists import ListEntry, ListFormatError, decode_line, parse_line, raw_lines
from snappix.data.video import VideoDecodeError, backend_available, open_video

__all__ = ["DEEP_CHUNK", "STATUSES", "BAD_KINDS", "one_line", "bad_result", "reason_kind", "check_entry",
           "read_rows"]

#: frames decoded per call in a deep check (bounds memory on long/high-resolution videos).
DEEP_CHUNK = 64
#: statuses of a checked row; ``short`` is a warning, the row is kept.
STATUSES = ("ok", "short", "bad")
#: the ``kind`` prefixes of bad reasons.
BAD_KINDS = ("malformed", "missing", "not_a_file", "not_a_folder", "empty", "open", "frames", "decode",
             "crash", "error")


def one_line(text: object) -> str:
    """``str(text)`` on one line, without tabs (whitespace runs become one space), for the TSV reports."""
    return " ".join(str(text).split())


def bad_result(kind: str, detail: str) -> tuple[str, str]:
    """The result ``("bad", "kind: detail")`` of a row, on one line (``kind``: one of :data:`BAD_KINDS`)."""
    return "bad", one_line(f"{kind}: {detail}")


def reason_kind(reason: str) -> str:
    """The ``kind`` of a ``kind: detail`` reason (``error`` when it has none of :data:`BAD_KINDS`)."""
    head, sep, _ = reason.partition(":")
    return head if sep and head in BAD_KINDS else "error"


def _frame_span(entry: ListEntry, reader_frames: int) -> tuple[int, int]:
    """``(offset, count)`` of the frames a row uses, as the datasets compute it."""
    if entry.is_video_file:
        return 0, reader_frames
    offset = entry.start_idx
    return offset, min(entry.total_frames, reader_frames - offset)


def _probe(entry: ListEntry, backend: str | None, deep: bool) -> tuple[int, float]:
    """Open the row with ``backend``, return ``(usable frames, fps)``; deep: decode them all.

    Raises:
        VideoDecodeError: open/decode failure; ``reason`` is prefixed with its kind.
    """
    try:
        reader = open_video(entry.path, backend=backend)
    except VideoDecodeError as exc:
        kind = "frames" if "no video frames" in exc.reason or "no video stream" in exc.reason else "open"
        raise VideoDecodeError(exc.path, f"{kind}: {exc.reason}") from exc
    with reader:
        fps = float(reader.fps)
        offset, count = _frame_span(entry, reader.num_frames)
        if count < 1:
            raise VideoDecodeError(entry.path, f"frames: folder has {reader.num_frames} frames, list says "
                                               f"start {entry.start_idx}, total {entry.total_frames}")
        if fps != fps or fps < 0:  # NaN or negative: unreadable
            raise VideoDecodeError(entry.path, f"open: unreadable fps ({reader.fps!r})")
        if deep:
            for start in range(offset, offset + count, DEEP_CHUNK):
                stop = min(start + DEEP_CHUNK, offset + count)
                try:
                    reader.get_frames(range(start, stop))
                except (VideoDecodeError, IndexError) as exc:
                    reason = exc.reason if isinstance(exc, VideoDecodeError) else str(exc)
                    raise VideoDecodeError(entry.path, f"decode: frames {start}-{stop - 1} of {count}: "
                                                       f"{reason}") from exc
        elif not entry.is_video_file:
            reader.get_frames([offset])  # a frame folder: the cheap check is reading one image
    return count, fps


def check_entry(entry: ListEntry, deep: bool = False, num_frames: int = 16,
                backend: str | None = None) -> tuple[str, str]:
    """Check one list row on disk.

    Args:
        entry: a parsed row; video rows (``total_frames == -1``) need a file, others a frame folder.
        deep: decode every frame the row uses (chunks of :data:`DEEP_CHUNK`), not just the header.
        num_frames: frames per clip; a video with fewer is reported ``short`` (kept, a warning).
        backend: video backend for files; ``None`` = decord (pyav if missing), retried once with
            pyav on failure, as the datasets' ``fallback_backend`` does. Frame rows always use
            ``frames``.

    Returns:
        ``(status, reason)``: status ``ok``, ``short`` or ``bad``; reason ``""`` for ``ok``, else a
        one-line ``kind: detail`` text (kinds: :data:`BAD_KINDS`, or ``short`` for a short video).
        Never raises for a bad file.
    """
    path = entry.path
    if not os.path.lexists(path):
        return bad_result("missing", "file not found" if entry.is_video_file else "frame folder not found")
    if entry.is_video_file:
        if os.path.isdir(path):
            return bad_result("not_a_file", "is a directory, not a video file")
        if not os.path.isfile(path):
            return bad_result("not_a_file", "not a regular file (broken link or special file)")
        if os.path.getsize(path) == 0:
            return bad_result("empty", "empty file (0 bytes)")
        backends = [backend] if backend else [("decord" if backend_available("decord") else "pyav")]
        if backend is None and backends[0] != "pyav" and backend_available("pyav"):
            backends.append("pyav")
    else:
        if not os.path.isdir(path):
            return bad_result("not_a_folder", "frame row (total_frames >= 0) but the path is not a folder")
        backends = ["frames"]
    errors = []
    for name in backends:
        try:
            count, _fps = _probe(entry, name, deep)
        except VideoDecodeError as exc:
            errors.append((name, exc.reason))
            continue
        except Exception as exc:  # noqa: BLE001 - a checker must classify, never crash
            errors.append((name, f"error: {type(exc).__name__}: {exc}"))
            continue
        if count < num_frames:
            return "short", one_line(f"short: {count} frames < num_frames {num_frames}")
        return "ok", ""
    kind = reason_kind(errors[-1][1])
    detail = "; ".join(f"[{name}] {reason.partition(': ')[2] or reason}" for name, reason in errors)
    return bad_result(kind, detail)


def read_rows(list_path: str, fmt: str, data_root: str) -> list[tuple[int, str, ListEntry | None, str]]:
    """The data rows of a list: ``(line_no, original text, entry or None, parse error)``.

    Blank lines and ``#`` comments are skipped; a malformed row (or one that is not UTF-8, its text then
    decoded with replacement characters) gets ``entry=None`` and the :class:`ListFormatError` message.

    Raises:
        OSError: the list cannot be read (e.g. FileNotFoundError).
    """
    rows = []
    for line_no, raw in enumerate(raw_lines(list_path), start=1):
        try:
            text = decode_line(raw, list_path, line_no)
            entry = parse_line(text, fmt, data_root, source=list_path, line_no=line_no)
        except ListFormatError as exc:
            rows.append((line_no, raw.decode("utf-8", "replace"), None, str(exc)))
            continue
        if entry is not None:
            rows.append((line_no, text, entry, ""))
    return rows
