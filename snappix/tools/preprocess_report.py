"""What ``preprocess_data.py`` reports: the summary, the log files and the failure reasons.

A failure reason is ``kind: detail``, with the kinds ``check_data`` uses where they apply:

* ``broken_link``: a symbolic link whose target does not exist;
* ``missing``: the file disappeared before it was read;
* ``empty``: 0 bytes;
* ``not_a_video``: OpenCV cannot open it and its first bytes match no video container;
* ``truncated``: it starts like a video container but cannot be opened (cut short), or it decodes to
  fewer frames than its header announces (``truncated: decoding stopped after N of the M frames ...``);
* ``decode``: it opens but yields no frame or no frame rate;
* ``error``: anything else (encoder, verification), with the exception's type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

FAILED_LOG = "preprocess_failed.txt"
PARTIAL_LOG = "preprocess_partial.txt"
DUPLICATE_LOG = "preprocess_duplicate.txt"

#: (offset, bytes) signatures of video containers: MP4/MOV, AVI, Matroska/WebM, Ogg, MPEG-PS/ES, FLV, ASF
_SIGNATURES = ((4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (0, b"RIFF"),
               (0, b"\x1aE\xdf\xa3"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"), (0, b"\x00\x00\x01\xb3"),
               (0, b"FLV"), (0, b"\x30\x26\xb2\x75"))


@dataclass
class Summary:
    """Outcome of :func:`snappix.tools.preprocess.preprocess_tree`; ``failed`` holds ``(src, reason)``,
    ``duplicates`` ``(skipped, kept, output)``, ``partial`` ``(src, frames written, header count)``."""

    found: int = 0
    converted: int = 0
    skipped_existing: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    duplicates: list[tuple[Path, Path, Path]] = field(default_factory=list)
    partial: list[tuple[Path, int, int]] = field(default_factory=list)

    def lines(self, out_root: Path | None = None) -> list[str]:
        """Human-readable summary lines."""
        where = (lambda name: f"  (see {out_root / name})") if out_root is not None else (lambda name: "")
        return [
            f"videos found      {self.found}",
            f"converted         {self.converted}",
            f"skipped existing  {self.skipped_existing}",
            f"failed            {len(self.failed)}" + (where(FAILED_LOG) if self.failed else ""),
            f"partial           {len(self.partial)}" + (where(PARTIAL_LOG) if self.partial else ""),
            f"duplicates        {len(self.duplicates)}" + (where(DUPLICATE_LOG) if self.duplicates else ""),
        ]


def one_line(text: str) -> str:
    """``text`` with all whitespace runs (newlines included) collapsed to one space."""
    return " ".join(str(text).split()) or "unknown error"


def looks_like_video(path: str | os.PathLike) -> bool:
    """True when the first bytes of ``path`` match a known video container signature."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return any(head[off:off + len(sig)] == sig for off, sig in _SIGNATURES)


def failure_reason(src: str | os.PathLike, exc: BaseException, read_error: type[BaseException]) -> str:
    """The ``kind: detail`` reason (module docstring) of ``exc``, raised converting ``src``.

    Args:
        src: the source video.
        exc: the exception.
        read_error: the reader's exception type (its message is the detail, without the type name).
    """
    path = Path(src)
    if path.is_symlink() and not path.exists():
        return f"broken_link: the link points to {os.readlink(path)}, which does not exist"
    if not path.exists():
        return "missing: file not found"
    if path.is_file() and path.stat().st_size == 0:
        return "empty: 0 bytes"
    detail = one_line(str(exc) if isinstance(exc, read_error) else f"{type(exc).__name__}: {exc}")
    if detail.startswith("truncated:"):
        return detail
    if isinstance(exc, read_error) and "cannot open" in detail:
        if looks_like_video(path):
            return f"truncated: starts like a video container but {detail} (cut short?)"
        return f"not_a_video: {detail}; its first bytes match no video container"
    if isinstance(exc, read_error):
        return f"decode: {detail}"
    return f"error: {detail}"
