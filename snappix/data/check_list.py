"""The data doctor on whole list files: every row checked, in worker processes, resumable.

:func:`check_list` runs :func:`snappix.data.check.check_entry` on every row of one list and writes,
for an output prefix ``PREFIX`` (default: the list path):

* ``PREFIX.clean``: the good and short rows, original text, ``\\n`` line endings;
* ``PREFIX.bad.tsv``: ``path <TAB> reason`` for each bad row, ``reason`` = ``kind: detail``;
* ``PREFIX.progress.tsv``: ``line_no <TAB> status <TAB> reason``, appended as results arrive. A
  rerun with the same list and options skips the rows already there (resume after a crash or
  Ctrl-C); a header line records the options, and different options start afresh.

A worker killed by a decoder crash does not stop the run: only the row that killed it is marked
``crash``. :func:`check_lists_for_training` is the training entry points' ``--check_data``: the same on
each of their lists, on rank 0 only, stopping with :class:`DataCheckError` when a row is bad. The
command line is ``python -m snappix.tools.check_data`` (``docs/reliability.md``).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

from snappix.data.check import STATUSES, bad_result, check_entry, one_line, read_rows, reason_kind
from snappix.data.lists import ListEntry, write_lines
from snappix.data.worker_pool import worker_pool
from snappix.errors import UserError

__all__ = ["PROGRESS_MAGIC", "CheckReport", "progress_header", "load_progress", "check_list", "launcher_rank",
           "DataCheckError", "check_lists_for_training", "default_workers"]

PROGRESS_MAGIC = "# snappix.check_data v1"

Row = tuple[int, str, ListEntry | None, str]  # (line_no, text, entry or None, parse error)


def default_workers() -> int:
    """Worker processes when none are asked for: ``min(8, cpus)``, at least 1."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass
class CheckReport:
    """Outcome of :func:`check_list` on one list.

    Attributes:
        prefix: output prefix; the reports are ``prefix.clean``, ``prefix.bad.tsv``, ``prefix.progress.tsv``.
        rows: data rows in the list (malformed ones included).
        checked_now / resumed: rows checked in this call / taken from the progress file.
        counts: rows per status (``ok``, ``short``, ``bad``).
        bad_kinds: bad rows per reason kind (:data:`snappix.data.check.BAD_KINDS`).
        elapsed: seconds spent checking; deep: whether every frame was decoded.
    """

    prefix: str
    rows: int = 0
    checked_now: int = 0
    resumed: int = 0
    counts: Counter = field(default_factory=Counter)
    bad_kinds: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    deep: bool = False

    @property
    def progress_path(self) -> str:
        return f"{self.prefix}.progress.tsv"

    @property
    def exit_code(self) -> int:
        """0 when no row is bad, else 1 (the command line's exit status)."""
        return 1 if self.counts["bad"] else 0

    def summary(self) -> str:
        """Two or more lines for the console: counts, speed, and the report files."""
        rate = self.checked_now / self.elapsed if self.elapsed > 0 else float("inf")
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.bad_kinds.items())) or "none"
        c = self.counts
        return (f"check_data: {self.rows} rows ({self.checked_now} checked now, {self.resumed} resumed), "
                f"ok {c['ok'] + c['short']} (short {c['short']}), bad {c['bad']} [{kinds}]; "
                f"{rate:.1f} files/s{' (deep)' if self.deep else ''}\n"
                f"  clean list: {self.prefix}.clean\n  bad rows:   {self.prefix}.bad.tsv\n"
                f"  progress:   {self.progress_path}")


def progress_header(list_path: str, data_root: str, fmt: str, deep: bool, num_frames: int,
                    backend: str | None) -> str:
    """The first line of a progress file: the options its results depend on."""
    return (f"{PROGRESS_MAGIC} list={os.path.abspath(list_path)} root={data_root} "
            f"format={fmt} deep={int(deep)} num_frames={num_frames} "
            f"backend={backend or 'auto'}")


def load_progress(path: str, header: str) -> dict[int, tuple[str, str]]:
    """Results ``{line_no: (status, reason)}`` already recorded in a progress file with the same ``header``;
    {} when none/stale.

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


def _check_task(task: tuple) -> tuple[int, str, str]:
    """Pool worker: ``(line_no, entry, deep, num_frames, backend)`` -> ``(line_no, status, reason)``."""
    line_no, entry, deep, num_frames, backend = task
    try:
        status, reason = check_entry(entry, deep=deep, num_frames=num_frames, backend=backend)
    except Exception as exc:  # noqa: BLE001
        status, reason = bad_result("error", f"{type(exc).__name__}: {exc}")
    return line_no, status, reason


def _check_isolated(task: tuple) -> tuple[int, str, str]:
    """Check one row in its own worker process; a crash of that process marks the row bad."""
    with worker_pool(1) as ex:
        try:
            return ex.submit(_check_task, task).result()
        except BrokenProcessPool:
            return (task[0], *bad_result("crash", "the checking process died on this file (decoder crash?)"))


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


def _check_pending(rows: list[Row], done: dict[int, tuple[str, str]], progress_path: str, header: str,
                   options: tuple, workers: int, progress: bool) -> int:
    """Check the rows not in ``done`` (recording each in ``done`` and the progress file); return how many."""
    mode = "a" if os.path.isfile(progress_path) and _first_line(progress_path) == header else "w"
    checked_now = 0
    with open(progress_path, mode, encoding="utf-8", newline="\n") as prog:
        if mode == "w":
            prog.write(header + "\n")
            prog.flush()
        elif _ends_mid_line(progress_path):
            prog.write("\n")  # a crash cut the last line short: start a fresh one

        def record(line_no: int, status: str, reason: str) -> None:
            done[line_no] = (status, reason)
            prog.write(f"{line_no}\t{status}\t{one_line(reason)}\n")
            prog.flush()

        for line_no, _text, entry, error in rows:  # malformed rows: no worker needed
            if entry is None and line_no not in done:
                record(line_no, *bad_result("malformed", error))
                checked_now += 1
        tasks = [(line_no, entry, *options) for line_no, _text, entry, _err in rows
                 if entry is not None and line_no not in done]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(rows), initial=len(rows) - len(tasks), unit="file", desc="check_data",
                       file=sys.stderr, dynamic_ncols=True)
        try:
            for line_no, status, reason in _run_checks(tasks, workers):
                record(line_no, status, reason)
                checked_now += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    return checked_now


def check_list(list_path: str, fmt: str = "cls", data_root: str = "", *, deep: bool = False,
               num_frames: int = 16, backend: str | None = None, workers: int = 1, out: str | None = None,
               progress: bool = True) -> CheckReport:
    """Check every row of the list ``list_path`` and write the reports (module docstring).

    Args:
        list_path: the list file; fmt: its format (:data:`snappix.data.lists.FORMATS`).
        data_root: prefix joined to every listed path.
        deep, num_frames, backend: see :func:`snappix.data.check.check_entry`.
        workers: processes (1 = in this process); they exit when this process is killed.
        out: output prefix (default: ``list_path``); its folder is created.
        progress: show a tqdm bar on stderr.

    Returns:
        :class:`CheckReport` (nothing is printed).

    Raises:
        FileNotFoundError: the list file does not exist.
    """
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"list file not found: {list_path}")
    report = CheckReport(prefix=out or list_path, deep=deep)
    rows = read_rows(list_path, fmt, data_root)
    header = progress_header(list_path, data_root, fmt, deep, num_frames, backend)
    valid_lines = {r[0] for r in rows}
    done = {k: v for k, v in load_progress(report.progress_path, header).items() if k in valid_lines}
    report.rows, report.resumed = len(rows), len(done)
    os.makedirs(os.path.dirname(os.path.abspath(report.progress_path)), exist_ok=True)
    t0 = time.perf_counter()
    report.checked_now = _check_pending(rows, done, report.progress_path, header, (deep, num_frames, backend),
                                        workers, progress)
    report.elapsed = time.perf_counter() - t0

    clean, bad_lines = [], []
    for line_no, text, entry, _err in rows:
        status, reason = done[line_no]
        report.counts[status] += 1
        if status == "bad":
            report.bad_kinds[reason_kind(reason)] += 1
            where = entry.path if entry is not None else one_line(text)
            bad_lines.append(f"{where}\t{reason}")
        else:
            clean.append(text)
    write_lines(f"{report.prefix}.clean", clean)
    write_lines(f"{report.prefix}.bad.tsv", bad_lines)
    return report


def launcher_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's global rank as its launcher set it: ``RANK`` (torchrun, with ``WORLD_SIZE``), else
    ``SLURM_PROCID`` when ``SLURM_NTASKS > 1``, else 0: the rank ``snappix.engine.distributed.discover_ranks``
    finds, read without changing the environment and before any process group exists (the data layer
    imports nothing above it).

    Raises:
        ValueError: a rank variable that is not an integer.
    """
    env = os.environ if environ is None else environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return int(env["RANK"])
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return int(env["SLURM_PROCID"])
    return 0


class DataCheckError(UserError, RuntimeError):
    """``--check_data`` found bad rows; the message names the list, the report files and the first rows."""


def check_lists_for_training(lists: Sequence[str | None], fmt: str, data_root: str = "",
                             output_dir: str | None = None, deep: bool = False, num_frames: int = 16,
                             workers: int | None = None, progress: bool = True) -> list[str]:
    """The training entry points' ``--check_data``: run the doctor on each list, stop on bad rows.

    Runs on rank 0 only (:func:`launcher_rank`; other ranks return ``[]`` at once). Reports go to
    ``output_dir/data_check/<list name>.{clean,bad.tsv,progress.tsv}`` (nothing is written next to the
    lists; a temporary folder is used without ``output_dir``); a rerun resumes. Each list's summary is
    printed.

    Args:
        lists: list files (``None`` entries and duplicates are skipped).
        fmt: their format (``cls`` for finetuning, ``pretrain`` for pretraining).
        deep: decode every frame (``--check_data_deep``).
        num_frames: frames per clip; shorter videos are a warning only.
        workers: processes (default :func:`default_workers`).

    Returns:
        the clean-list paths written, one per list checked.

    Raises:
        DataCheckError: a list has bad rows (the run should not start); FileNotFoundError: a list is missing.
    """
    import tempfile

    if launcher_rank() != 0:
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
        report = check_list(lst, fmt, data_root or "", deep=deep, num_frames=num_frames,
                            workers=workers or default_workers(), out=prefix, progress=progress)
        print(report.summary())
        if report.exit_code:
            with open(f"{prefix}.bad.tsv", encoding="utf-8") as f:
                bad = [ln.rstrip("\n") for ln in f if ln.strip()]
            first = "\n".join(f"  {ln}" for ln in bad[:10])
            raise DataCheckError(
                f"--check_data: {len(bad)} bad rows in {lst} (all in {prefix}.bad.tsv):\n{first}\nFix or remove them, "
                f"or train on the rows that passed: {prefix}.clean")
        clean_paths.append(f"{prefix}.clean")
    return clean_paths
