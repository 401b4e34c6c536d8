"""Helpers shared by the list-building scripts in ``dataset/`` (not a CLI).

Every script in this folder runs standalone (``python dataset/<script>.py ...``); this module
makes ``snappix`` importable from a source checkout, reads annotation/list files robustly
(CRLF, tabs, repeated spaces, BOM, blank lines, ``#`` comments) and reports malformed rows
with the file and 1-based line number.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator

try:  # a source checkout without `pip install -e .`: put the repository root on sys.path
    import snappix  # noqa: F401
except ImportError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from snappix.data.lists import ListFormatError, read_list, write_lines, write_list  # noqa: E402,F401

KINETICS_VERSIONS = ("k400", "k600", "k700")


class InputError(ValueError):
    """Bad input that is not a single malformed row (missing file, inconsistent annotations...)."""


#: what the CLIs catch and print as ``error: ...`` (exit status 2) instead of a traceback
USER_ERRORS = (ListFormatError, InputError, FileNotFoundError, NotADirectoryError)


def fail(message: str) -> int:
    """Print ``error: message`` to stderr and return the CLI's error exit status (2)."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def require_file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{what} is not a directory: {path}")
    return path


def iter_text_rows(path: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_no, stripped_text)`` for the non-blank, non-comment lines of a text file.

    Universal newlines turn CRLF / CR into ``\\n``; a UTF-8 byte-order mark is dropped.
    """
    require_file(path, "input file")
    with open(path, "r", encoding="utf-8-sig", newline=None) as f:
        for line_no, line in enumerate(f, start=1):
            text = line.strip()
            if text and not text.startswith("#"):
                yield line_no, text


def parse_int(raw: str, what: str, where: str, text: str, minimum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ListFormatError(f"{where}: {what} must be an integer, got {raw!r} in {text!r}") from None
    if minimum is not None and value < minimum:
        raise ListFormatError(f"{where}: {what} must be >= {minimum}, got {value} in {text!r}")
    return value


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def split_path_and_ints(text: str, where: str, expected: str, n_ints: Iterable[int] = (1, 2)
                        ) -> tuple[str, list[int]]:
    """Split a row ``path int [int]``: the trailing integer fields are split off from the right
    (their count must be one of ``n_ints``); what is left is the path, which may contain spaces
    (``k400/train/air drumming/x.mp4 3``).

    Raises:
        ListFormatError: naming ``where`` (``file:line``) and the ``expected`` row layout.
    """
    fields = text.split()
    n_ints = sorted(set(n_ints))
    trailing = 0
    while trailing < len(fields) - 1 and _is_int(fields[-1 - trailing]):
        trailing += 1
    if trailing not in n_ints:
        if trailing == 0:
            detail = (f"the last field {fields[-1]!r} is not an integer" if len(fields) > 1
                      else "only one field")
        else:
            detail = f"{trailing} integer fields after the path"
        raise ListFormatError(f"{where}: expected {expected}; {detail} in {text!r}")
    path = text.rsplit(None, trailing)[0].strip()
    return path, [int(x) for x in fields[len(fields) - trailing:]]


def basename(path: str) -> str:
    """Last component of a list path; ``/`` and ``\\`` both count as separators, trailing ones ignored."""
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def stem(path: str) -> str:
    """File name without its extension: ``a/b/74225.webm`` -> ``74225``; ``a/b/74225`` -> ``74225``."""
    name = basename(path)
    root, _ = os.path.splitext(name)
    return root or name


def find_processed(directory: str, name: str) -> str | None:
    """The file name under ``directory`` for a listed video ``name``: ``name`` itself, else
    ``<stem>.mp4`` (the name preprocess_data.py gives a processed video). None when neither exists."""
    if os.path.isfile(os.path.join(directory, name)):
        return name
    alt = stem(name) + ".mp4"
    if alt != name and os.path.isfile(os.path.join(directory, alt)):
        return alt
    return None


def kinetics_version(path: str) -> str | None:
    """The first path component equal to ``k400``/``k600``/``k700`` (case-insensitive), else None."""
    for part in path.replace("\\", "/").split("/"):
        if part.lower() in KINETICS_VERSIONS:
            return part.lower()
    return None


def iter_k710_rows(csv_path: str) -> Iterator[tuple[str, str, str]]:
    """``(kinetics_version, path, 'csv:line')`` for each row of a K710 list.

    Raises:
        ListFormatError: a malformed row, or a path naming none of k400/k600/k700.
    """
    expected = "'path label' or 'path start_idx total_frames'"
    for line_no, text in iter_text_rows(csv_path):
        where = f"{csv_path}:{line_no}"
        path, _ = split_path_and_ints(text, where, expected)
        version = kinetics_version(path)
        if version is None:
            raise ListFormatError(
                f"{where}: cannot tell the Kinetics version of {path!r}: no path component is one "
                f"of {', '.join(KINETICS_VERSIONS)}")
        yield version, path, where


def join_rel(prefix: str, *parts: str) -> str:
    """Join list-path components with ``/`` (list paths are POSIX-style), skipping an empty prefix."""
    return "/".join(p.strip("/") for p in (prefix, *parts) if p and p.strip("/"))


def write_text_lines(path: str, lines: Iterable[str]) -> int:
    """Write plain text lines (logs) with ``\\n`` endings, atomically. Returns the line count."""
    return write_lines(path, lines)


def progress(iterable, **kwargs):
    """tqdm progress bar when tqdm is installed (and stderr is not silenced), else the iterable."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", 1.0)
    return tqdm(iterable, **kwargs)
