"""List files of the video-learning field: reading, writing and checking.

Formats (all whitespace separated, no header; ``path`` may contain spaces because the
numeric fields are split off from the right):

=============  ==========================================  =========================================
``fmt``        row                                         used by
=============  ==========================================  =========================================
``cls``        ``path label``                              VideoMAE / SnapPix ``VideoClsDataset``
``pretrain``   ``path start_idx total_frames``             VideoMAEv2 / SnapPix ``HybridVideoMAE``;
                                                           ``0 -1`` means "a video file"
``rawframes``  ``frame_dir total_frames label``            VideoMAEv2 ``RawFrameClsDataset``, mmaction2
``long``       ``path label duration_s``                   long-video datasets (LVU)
``reg``        ``path target``                             regression (LVU like / view); ``target``
                                                           a finite float, used as written
=============  ==========================================  =========================================

Robust to CRLF line endings, repeated spaces and tabs, blank lines and ``#`` comments.
A malformed row, a row that is not UTF-8, a path leading out of a non-empty ``data_root`` (unless
``allow_outside_root``) and one path with two labels raise :class:`ListFormatError` naming the file and
the 1-based line; exact duplicate rows are a warning.
Lists are always written with ``\\n`` line endings.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

from snappix.errors import UserError

log = logging.getLogger(__name__)

FORMATS = {
    # fmt: (names of the numeric fields after the path, their types)
    "cls": (("label",), (int,)),
    "pretrain": (("start_idx", "total_frames"), (int, int)),
    "rawframes": (("total_frames", "label"), (int, int)),
    "long": (("label", "duration_s"), (int, float)),
    "reg": (("target",), (float,)),
}


class ListFormatError(UserError, ValueError):
    """A row of a list file does not match the expected format (message names file and line)."""


@dataclass(frozen=True)
class ListEntry:
    """One row of a list file.

    Attributes:
        path: the path as written in the list joined to ``data_root`` (str).
        rel_path: the path exactly as written in the list.
        line_no: 1-based line number in the list file (0 for entries not read from a file).
        label: class index (``cls``, ``rawframes``, ``long``), else ``None``.
        start_idx: first frame index (``pretrain``), else 0.
        total_frames: number of frames (``pretrain`` raw-frame rows, ``rawframes``); -1 = a video file.
        duration_s: clip duration in seconds (``long``), else ``None``.
        target: regression target (``reg``), else ``None``.
    """

    path: str
    rel_path: str
    line_no: int = 0
    label: int | None = None
    start_idx: int = 0
    total_frames: int = -1
    duration_s: float | None = None
    target: float | None = None

    @property
    def is_video_file(self) -> bool:
        """True when the row points at a video file (``total_frames == -1``), False for a frame folder."""
        return self.total_frames < 0


def _join(data_root: str, rel: str) -> str:
    return os.path.join(data_root, rel) if data_root else rel


def _csv_hint(text: str) -> str:
    """For a row with commas (a CSV, e.g. the Kinetics ``path,label`` file): how to convert it."""
    if "," not in text:
        return ""
    return ("; this looks like a CSV (commas, maybe a header): lists are whitespace-separated rows without a "
            "header. Convert it (a 'path,label' CSV or an official Kinetics annotation CSV) with python "
            "dataset/kinetics_list.py --csv FILE --video_dir VIDEO_DIR --out LIST, then pass the --data_root it "
            "prints (VIDEO_DIR)")


def parse_line(line: str, fmt: str, data_root: str = "", source: str = "<list>", line_no: int = 0
               ) -> ListEntry | None:
    """Parse one list row; return ``None`` for blank lines and ``#`` comments.

    Raises:
        ListFormatError: wrong field count or a non-numeric field, naming ``source:line_no``.
        ValueError: unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown list format {fmt!r}; valid: {sorted(FORMATS)}")
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    names, types = FORMATS[fmt]
    parts = text.rsplit(None, len(names))
    where = f"{source}:{line_no}"
    expected = f"'path {' '.join(names)}'"
    if len(parts) != len(names) + 1:
        raise ListFormatError(f"{where}: expected {expected} ({fmt} list), got {text!r}{_csv_hint(text)}")
    values = {}
    for name, typ, raw in zip(names, types, parts[1:]):
        try:
            values[name] = typ(raw)
        except ValueError:
            raise ListFormatError(
                f"{where}: field {name!r} must be {typ.__name__}, got {raw!r} in {text!r} "
                f"(expected {expected}){_csv_hint(text)}") from None
    rel = parts[0].strip()
    if fmt == "pretrain" and values["total_frames"] < -1:
        raise ListFormatError(f"{where}: total_frames must be -1 (video file) or >= 0, got {text!r}")
    if fmt == "rawframes" and values["total_frames"] < 1:
        raise ListFormatError(f"{where}: total_frames must be >= 1 for a frame folder, got {text!r}")
    if not all(math.isfinite(v) for v in values.values() if isinstance(v, float)):
        raise ListFormatError(f"{where}: numeric fields must be finite (no nan / inf), got {text!r}")
    if "label" in values and values["label"] < 0:
        raise ListFormatError(f"{where}: label must be >= 0, got {text!r}")
    return ListEntry(path=_join(data_root, rel), rel_path=rel, line_no=line_no, **values)


def raw_lines(path: str) -> list[bytes]:
    """The lines of a list file as bytes (BOM dropped; ``\\n``, ``\\r\\n`` and ``\\r`` end a line)."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")


def decode_line(raw: bytes, source: str, line_no: int) -> str:
    """``raw`` as UTF-8 text; :class:`ListFormatError` naming ``source:line_no`` and the byte otherwise."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ListFormatError(
            f"{source}:{line_no}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
            f"save the list as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def _outside(root: str, rel: str) -> bool:
    """True when ``rel`` (absolute, or with ``..``) leads out of ``root``."""
    if os.path.isabs(rel):
        return True
    base = os.path.abspath(root)
    return os.path.commonpath([base, os.path.abspath(os.path.join(base, rel))]) != base


def check_rows(entries: Sequence[ListEntry], source: str, data_root: str = "",
               allow_outside_root: bool = False) -> None:
    """Rows that make a run silently wrong: a path leaving ``data_root``, the same path with two labels
    (errors), exact duplicate rows (a warning naming the first few lines).

    Raises:
        ListFormatError: naming ``source:line`` and the fix (``--allow_outside_root`` for the first).
    """
    seen: dict[str, ListEntry] = {}
    duplicates: list[tuple[int, int]] = []
    for e in entries:
        if data_root and not allow_outside_root and _outside(data_root, e.rel_path):
            raise ListFormatError(f"{source}:{e.line_no}: path {e.rel_path!r} leads outside --data_root "
                                  f"{data_root}; fix the row, or pass --allow_outside_root if that is intended")
        first = seen.setdefault(e.rel_path, e)
        if first is e:
            continue
        if (first.label, first.target) != (e.label, e.target):
            what, a, b = ("target", first.target, e.target) if e.label is None else ("label", first.label, e.label)
            raise ListFormatError(f"{source}:{e.line_no}: {e.rel_path!r} has {what} {b}, but {what} "
                                  f"{a} at line {first.line_no}; one file must have one {what}")
        if first == ListEntry(**{**e.__dict__, "line_no": first.line_no}):
            duplicates.append((first.line_no, e.line_no))
    if duplicates:
        shown = ", ".join(f"line {b} repeats line {a}" for a, b in duplicates[:5])
        log.warning("%s: %d duplicate row(s) (%s%s); each counts once more per epoch", source, len(duplicates),
                    shown, ", ..." if len(duplicates) > 5 else "")


def read_list(path: str | os.PathLike, fmt: str, data_root: str = "", allow_outside_root: bool = False,
              check: bool = True) -> list[ListEntry]:
    """Read a list file.

    Args:
        path: the list file (UTF-8; a BOM is accepted).
        fmt: one of ``cls``, ``pretrain``, ``rawframes``, ``long``, ``reg`` (see module docstring).
        data_root: prefix joined to every path (VideoMAE's ``--data_root``).
        allow_outside_root: accept rows whose path is absolute or climbs out of a non-empty ``data_root``.
        check: run :func:`check_rows` (duplicates, conflicting labels, paths outside the root).

    Returns:
        The rows in file order, blank lines and comments skipped.

    Raises:
        FileNotFoundError: the list file does not exist.
        ListFormatError: a malformed or non-UTF-8 row, a path outside ``data_root``, one path with two
            labels (the message names the file and line).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"list file not found: {path}")
    entries = []
    for i, raw in enumerate(raw_lines(path), start=1):
        entry = parse_line(decode_line(raw, path, i), fmt, data_root, source=path, line_no=i)
        if entry is not None:
            entries.append(entry)
    if check:
        check_rows(entries, path, data_root, allow_outside_root)
    return entries


def format_entry(entry: ListEntry, fmt: str) -> str:
    """The list row (without newline) for ``entry`` in ``fmt``, using ``entry.rel_path``."""
    names, _ = FORMATS[fmt]
    fields = []
    for name in names:
        value = getattr(entry, name)
        if value is None:
            raise ValueError(f"entry {entry.rel_path!r} has no {name!r} for a {fmt} list")
        fields.append(repr(value) if isinstance(value, float) else str(value))
    return " ".join([entry.rel_path, *fields])


def write_list(path: str | os.PathLike, rows: Iterable[ListEntry | Sequence], fmt: str) -> int:
    """Write a list file with ``\\n`` line endings, atomically (temp file + rename).

    Args:
        rows: :class:`ListEntry` objects, or tuples ``(rel_path, *fields)`` in the order of ``fmt``.

    Returns:
        The number of rows written.

    Raises:
        ListFormatError: a tuple row that does not parse back in ``fmt``.
    """
    path = os.fspath(path)
    lines = []
    for row in rows:
        line = format_entry(row, fmt) if isinstance(row, ListEntry) else " ".join(str(x) for x in row)
        # Everything written must be readable back: validate through the parser.
        parse_line(line, fmt, source=path, line_no=len(lines) + 1)
        lines.append(line)
    return write_lines(path, lines)


def write_lines(path: str | os.PathLike, lines: Iterable[str]) -> int:
    """Write text lines with ``\\n`` endings atomically (temp file + rename); returns the line count."""
    path = os.fspath(path)
    lines = list(lines)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)
    os.replace(tmp, path)
    return len(lines)


@dataclass
class CheckReport:
    """Result of :func:`check_files`: which listed files are missing on disk."""

    total: int
    missing: list[ListEntry]

    @property
    def ok(self) -> bool:
        return not self.missing

    def summary(self, max_show: int = 10) -> str:
        if self.ok:
            return f"all {self.total} listed files exist"
        head = "\n".join(f"  line {e.line_no}: {e.path}" for e in self.missing[:max_show])
        more = f"\n  ... and {len(self.missing) - max_show} more" if len(self.missing) > max_show else ""
        return f"{len(self.missing)} of {self.total} listed files are missing, first {min(max_show, len(self.missing))}:\n{head}{more}"


def check_files(entries: Sequence[ListEntry]) -> CheckReport:
    """Report the entries whose file (video) or folder (frames) does not exist.

    Meant to run before a training run starts, so a wrong ``--data_root`` is found at once
    rather than hidden by per-item substitution.
    """
    missing = [e for e in entries
               if not (os.path.isfile(e.path) if e.is_video_file else os.path.isdir(e.path))]
    return CheckReport(total=len(entries), missing=missing)
