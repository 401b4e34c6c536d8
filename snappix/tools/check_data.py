"""Data doctor: check every row of a list file before a long run.

::

    python -m snappix.tools.check_data --data_path train.csv --data_root /data/k400 \\
        --format cls --workers 16 --deep --num_frames 16 --sampling_rate 4 --out checks/train

For each row it checks that the path exists and has the right kind (a file for video rows, a
folder for frame rows), is non-empty, opens, and has a readable frame count and fps. With
``--deep`` every frame is decoded (in chunks of :data:`DEEP_CHUNK`), so a truncated or corrupt
tail is found whatever clip dense sampling picks (any ``--sampling_rate``). A malformed row is
reported as bad with the parser's ``file:line`` message instead of stopping the run.

A video with fewer than ``--num_frames`` frames is a warning (status ``short``): it stays in the
clean list (the samplers repeat frames) but is counted in the summary.

Outputs (``PREFIX`` defaults to the list path):

* ``PREFIX.clean``: the good and short rows, original text, ``\\n`` line endings;
* ``PREFIX.bad.tsv``: ``path <TAB> reason`` for each bad row, ``reason`` = ``kind: detail``;
* ``PREFIX.progress.tsv``: ``line_no <TAB> status <TAB> reason``, appended as results arrive. A
  rerun with the same list and options skips the rows already there (resume after a crash or
  Ctrl-C); a header line records the options, and different options start afresh.

Exit code: 0 when no row is bad, 1 otherwise, 2 for a usage error (e.g. missing list file).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Iterator

from snappix.data.lists import FORMATS, ListEntry, ListFormatError, decode_line, parse_line, raw_lines, write_lines
from snappix.data.video import VideoDecodeError, backend_available, open_video
from snappix.errors import UserError
from snappix.tools.worker_pool import worker_pool

#: frames decoded per call in a deep check (bounds memory on long/high-resolution videos).
DEEP_CHUNK = 64
#: statuses of a checked row; ``short`` is a warning, the row is kept.
STATUSES = ("ok", "short", "bad")
#: the ``kind`` prefixes of bad reasons.
BAD_KINDS = ("malformed", "missing", "not_a_file", "not_a_folder", "empty", "open", "frames", "decode",
             "crash", "error")
PROGRESS_MAGIC = "# snappix.check_data v1"


def _clean(text: str) -> str:
    """One-line, tab-free text for the TSV outputs."""
    return " ".join(str(text).split())


def _bad(kind: str, detail: str) -> tuple[str, str]:
    return "bad", _clean(f"{kind}: {detail}")


def reason_kind(reason: str) -> str:
    """The ``kind`` of a ``kind: detail`` reason (``error`` when it has none)."""
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
        return _bad("missing", "file not found" if entry.is_video_file else "frame folder not found")
    if entry.is_video_file:
        if os.path.isdir(path):
            return _bad("not_a_file", "is a directory, not a video file")
        if not os.path.isfile(path):
            return _bad("not_a_file", "not a regular file (broken link or special file)")
        if os.path.getsize(path) == 0:
            return _bad("empty", "empty file (0 bytes)")
        backends = [backend] if backend else [("decord" if backend_available("decord") else "pyav")]
        if backend is None and backends[0] != "pyav" and backend_available("pyav"):
            backends.append("pyav")
    else:
        if not os.path.isdir(path):
            return _bad("not_a_folder", "frame row (total_frames >= 0) but the path is not a folder")
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
            return "short", _clean(f"short: {count} frames < num_frames {num_frames}")
        return "ok", ""
    kind = reason_kind(errors[-1][1])
    detail = "; ".join(f"[{name}] {reason.partition(': ')[2] or reason}" for name, reason in errors)
    return _bad(kind, detail)


def _check_task(task: tuple) -> tuple[int, str, str]:
    """Pool worker: ``(line_no, entry, deep, num_frames, backend)`` -> ``(line_no, status, reason)``."""
    line_no, entry, deep, num_frames, backend = task
    try:
        status, reason = check_entry(entry, deep=deep, num_frames=num_frames, backend=backend)
    except Exception as exc:  # noqa: BLE001
        status, reason = _bad("error", f"{type(exc).__name__}: {exc}")
    return line_no, status, reason


def read_rows(list_path: str, fmt: str, data_root: str) -> list[tuple[int, str, ListEntry | None, str]]:
    """The data rows of a list: ``(line_no, original text, entry or None, parse error)``.

    Blank lines and ``#`` comments are skipped; a malformed row (or one that is not UTF-8, its text then
    decoded with replacement characters) gets ``entry=None`` and the :class:`ListFormatError` message.
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


def _progress_header(args: argparse.Namespace) -> str:
    return (f"{PROGRESS_MAGIC} list={os.path.abspath(args.data_path)} root={args.data_root} "
            f"format={args.format} deep={int(args.deep)} num_frames={args.num_frames} "
            f"backend={args.backend or 'auto'}")


def load_progress(path: str, header: str) -> dict[int, tuple[str, str]]:
    """Results already recorded in a progress file with the same ``header``; {} when none/stale.

    Tolerates a last line cut short by a crash (it is ignored and re-checked).
    """
    if not os.path.isfile(path):
        return {}
    done: dict[int, tuple[str, str]] = {}
    with open(path, "r", encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
        if first != header:
            return {}
        for line in f:
            if not line.endswith("\n"):
                break  # partial write
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or parts[1] not in STATUSES:
                continue
            try:
                done[int(parts[0])] = (parts[1], parts[2])
            except ValueError:
                continue
    return done


def _first_line(path: str) -> str:
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return f.readline().rstrip("\n")


def _ends_mid_line(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def _check_isolated(task: tuple) -> tuple[int, str, str]:
    """Check one row in its own worker process; a crash of that process marks the row bad."""
    with worker_pool(1) as ex:
        try:
            return ex.submit(_check_task, task).result()
        except BrokenProcessPool:
            return (task[0], *_bad("crash", "the checking process died on this file (decoder crash?)"))


def _run_checks(tasks: list[tuple], workers: int) -> Iterator[tuple[int, str, str]]:
    """Yield ``(line_no, status, reason)`` as checks finish, with ``workers`` processes.

    A worker killed by a decoder crash (segfault) does not hang or stop the run: the rows that were
    in flight are re-checked one per process, so only the culprit is marked ``crash``.
    """
    if workers <= 1 or len(tasks) <= 1:
        yield from map(_check_task, tasks)
        return
    pending = list(reversed(tasks))  # pop() from the end = list order
    while pending:
        suspects: list[tuple] = []
        with worker_pool(min(workers, len(pending))) as ex:
            inflight: dict = {}
            broken = False
            while (pending or inflight) and not suspects and not broken:
                try:
                    while pending and len(inflight) < 4 * workers:
                        task = pending.pop()
                        inflight[ex.submit(_check_task, task)] = task
                except BrokenProcessPool:
                    pending.append(task)  # not submitted: goes to the next pool
                    broken = True
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        suspects.append(task)
                        continue
                    yield result
            suspects.extend(inflight.values())
        for task in suspects:
            yield _check_isolated(task)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows every flag's default."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m snappix.tools.check_data", description=__doc__,
                                formatter_class=_Formatter)
    p.add_argument("--data_path", required=True, help="the list file to check")
    p.add_argument("--data_root", default="", help="prefix joined to every listed path")
    p.add_argument("--format", default="cls", choices=sorted(FORMATS), help="list format")
    p.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                   help="worker processes (1 = in-process); they exit when this process is killed")
    p.add_argument("--deep", action="store_true", help="decode every frame, not only the header")
    p.add_argument("--num_frames", type=int, default=16, help="frames per clip; fewer = 'short' warning")
    p.add_argument("--sampling_rate", type=int, default=4,
                   help="dense sampling stride (informational: --deep decodes all frames, so every "
                        "stride is covered)")
    p.add_argument("--backend", default=None, choices=["decord", "pyav", "torchcodec"],
                   help="video backend for files (default decord, pyav fallback)")
    p.add_argument("--out", default=None, help="output prefix (default: the list path)")
    p.add_argument("--no_progress", action="store_true", help="no tqdm bar")
    return p


def main(argv=None) -> int:
    """Command-line entry point; returns the exit code (0 all good, 1 bad rows, 2 usage error)."""
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.data_path):
        print(f"check_data: list file not found: {args.data_path}", file=sys.stderr)
        return 2
    prefix = args.out or args.data_path
    progress_path = f"{prefix}.progress.tsv"
    rows = read_rows(args.data_path, args.format, args.data_root)
    header = _progress_header(args)
    done = load_progress(progress_path, header)
    valid_lines = {r[0] for r in rows}
    done = {k: v for k, v in done.items() if k in valid_lines}
    resumed = len(done)

    os.makedirs(os.path.dirname(os.path.abspath(progress_path)), exist_ok=True)
    mode = "a" if os.path.isfile(progress_path) and _first_line(progress_path) == header else "w"
    t0 = time.perf_counter()
    checked_now = 0
    with open(progress_path, mode, encoding="utf-8", newline="\n") as prog:
        if mode == "w":
            prog.write(header + "\n")
            prog.flush()
        elif _ends_mid_line(progress_path):
            prog.write("\n")  # a crash cut the last line short: start a fresh one

        def record(line_no: int, status: str, reason: str) -> None:
            done[line_no] = (status, reason)
            prog.write(f"{line_no}\t{status}\t{_clean(reason)}\n")
            prog.flush()

        for line_no, _text, entry, error in rows:  # malformed rows: no worker needed
            if entry is None and line_no not in done:
                record(line_no, *_bad("malformed", error))
                checked_now += 1
        tasks = [(line_no, entry, args.deep, args.num_frames, args.backend)
                 for line_no, _text, entry, _err in rows if entry is not None and line_no not in done]
        bar = None
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=len(rows), initial=len(rows) - len(tasks), unit="file", desc="check_data",
                       file=sys.stderr, dynamic_ncols=True)
        try:
            for line_no, status, reason in _run_checks(tasks, args.workers):
                record(line_no, status, reason)
                checked_now += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    elapsed = time.perf_counter() - t0

    clean, bad_lines = [], []
    counts: Counter = Counter()
    bad_kinds: Counter = Counter()
    for line_no, text, entry, _err in rows:
        status, reason = done[line_no]
        counts[status] += 1
        if status == "bad":
            bad_kinds[reason_kind(reason)] += 1
            where = entry.path if entry is not None else _clean(text)
            bad_lines.append(f"{where}\t{reason}")
        else:
            clean.append(text)
    write_lines(f"{prefix}.clean", clean)
    write_lines(f"{prefix}.bad.tsv", bad_lines)

    rate = checked_now / elapsed if elapsed > 0 else float("inf")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(bad_kinds.items())) or "none"
    print(f"check_data: {len(rows)} rows ({checked_now} checked now, {resumed} resumed), "
          f"ok {counts['ok'] + counts['short']} (short {counts['short']}), bad {counts['bad']} [{kinds}]; "
          f"{rate:.1f} files/s{' (deep)' if args.deep else ''}")
    print(f"  clean list: {prefix}.clean\n  bad rows:   {prefix}.bad.tsv\n  progress:   {progress_path}")
    return 1 if counts["bad"] else 0


class DataCheckError(UserError, RuntimeError):
    """``--check_data`` found bad rows; the message names the list, the report files and the first rows."""


def check_lists_for_training(lists, fmt: str, data_root: str = "", output_dir: str | None = None,
                             deep: bool = False, num_frames: int = 16, workers: int | None = None,
                             progress: bool = True) -> list[str]:
    """The training entry points' ``--check_data``: run the doctor on each list, stop on bad rows.

    Runs on rank 0 only (other ranks return ``[]`` at once). Reports go to ``output_dir/data_check/<list name>.{clean,bad.tsv,progress.tsv}`` (nothing is
    written next to the lists; a temporary folder is used without ``output_dir``); a rerun resumes.

    Args:
        lists: list files (``None`` entries and duplicates are skipped).
        fmt: their format (``cls`` for finetuning, ``pretrain`` for pretraining).
        deep: decode every frame (``--check_data_deep``).
        num_frames: frames per clip; shorter videos are a warning only.
        workers: processes (default ``min(8, cpus)``).

    Returns:
        the clean-list paths written, one per list checked.

    Raises:
        DataCheckError: a list has bad rows (the run should not start); FileNotFoundError: a list is missing.
    """
    import tempfile

    from snappix.engine.distributed import discover_ranks

    if discover_ranks(environ=dict(os.environ))[0] != 0:
        return []  # rank 0 checks; the others wait for it when the process group starts
    root = os.path.join(output_dir, "data_check") if output_dir else tempfile.mkdtemp(prefix="snappix-check-")
    clean_paths, seen = [], set()
    for lst in lists:
        if not lst or lst in seen:
            continue
        seen.add(lst)
        if not os.path.isfile(lst):
            raise FileNotFoundError(f"--check_data: list file not found: {lst}")
        name = os.path.basename(lst)
        if sum(os.path.basename(x) == name for x in seen) > 1:
            name = f"{len(seen)}_{name}"
        prefix = os.path.join(root, name)
        argv = ["--data_path", lst, "--data_root", data_root or "", "--format", fmt, "--num_frames", str(num_frames),
                "--out", prefix, "--workers", str(workers or max(1, min(8, os.cpu_count() or 1)))]
        argv += ["--deep"] if deep else []
        argv += [] if progress else ["--no_progress"]
        code = main(argv)
        if code == 2:
            raise FileNotFoundError(f"--check_data: cannot check {lst}")
        if code != 0:
            with open(f"{prefix}.bad.tsv", encoding="utf-8") as f:
                bad = [ln.rstrip("\n") for ln in f if ln.strip()]
            first = "\n".join(f"  {ln}" for ln in bad[:10])
            raise DataCheckError(
                f"--check_data: {len(bad)} bad rows in {lst} (all in {prefix}.bad.tsv):\n{first}\nFix or remove them, "
                f"or train on the rows that passed: {prefix}.clean")
        clean_paths.append(f"{prefix}.clean")
    return clean_paths


if __name__ == "__main__":
    sys.exit(main())
