"""Unreadable videos during a run: the log, the counters and the threshold.

The rule (``--max_bad_fraction F``, default 0.01): the run stops with :class:`TooManyBadVideos`, naming
the files, when

    bad >= 2  and  bad > F * tried

where ``bad`` is the number of distinct list rows that failed to load and ``tried`` the number of
distinct list rows the loader tried (requested items and the rows tried as their substitutes), both
counted from the start of the process over *every* DataLoader worker. The counts live in two shared-
memory bitmaps (one byte per list row) created with the dataset, before any worker forks: a worker only
ever sets bytes to 1, so concurrent workers need no lock and cannot lose a count. Every worker checks
the rule after each failure, on the totals of all workers of its process. Across DDP ranks the bitmaps
are combined (element-wise maximum) at the end of every training epoch and evaluation by
:func:`snappix.engine.loader_guard.check_bad_videos_all_ranks`, and every rank applies the rule to the
combined counts, so all ranks stop together.
"""

from __future__ import annotations

import logging
import os

import torch

from snappix.errors import UserError

log = logging.getLogger(__name__)

BAD_VIDEOS_FILE = "bad_videos.txt"
#: bad videos below this count never stop a run
MIN_BAD = 2


class TooManyBadVideos(UserError, RuntimeError):
    """More than the allowed fraction of videos failed to load; the message lists them."""


class BadVideoTracker:
    """Shared counters of tried / failed list rows, ``bad_videos.txt`` and the threshold check.

    Args:
        log_dir: folder of ``bad_videos.txt`` (``None``: no file).
        max_bad_fraction: ``F`` of the rule in the module docstring.
        min_bad: distinct failures needed before the run may stop (default 2).
        num_rows: rows of the list (the size of the shared bitmaps).
        paths: ``row -> path`` for naming rows that failed in another worker (optional).

    ``state`` is a shared uint8 tensor ``(2, num_rows)``: row 0 = tried, row 1 = failed. Lines of
    ``bad_videos.txt`` are appended with ``O_APPEND`` so concurrent workers do not interleave.
    """

    def __init__(self, log_dir: str | None, max_bad_fraction: float = 0.01, min_bad: int = MIN_BAD,
                 num_rows: int = 0, paths=None):
        self.log_path = os.path.join(log_dir, BAD_VIDEOS_FILE) if log_dir else None
        self.max_bad_fraction = max_bad_fraction
        self.min_bad = min_bad
        self.state = torch.zeros((2, max(int(num_rows), 1)), dtype=torch.uint8).share_memory_()
        self.paths = paths
        self.failures: list[tuple[str, str]] = []  # (path, reason) seen by this process

    # -- counters ----------------------------------------------------------------------------------
    def tried(self, row: int) -> None:
        """Mark list row ``row`` as tried (by any worker)."""
        self.state[0, row] = 1

    def is_bad(self, row: int) -> bool:
        """True when row ``row`` already failed in any worker of this process."""
        return bool(self.state[1, row])

    @property
    def seen(self) -> int:
        """Distinct rows tried so far, over all workers of this process."""
        return int(self.state[0].sum())

    @property
    def num_bad(self) -> int:
        """Distinct rows that failed so far, over all workers of this process."""
        return int(self.state[1].sum())

    # -- log ---------------------------------------------------------------------------------------
    def fail(self, path: str, reason: str, row: int | None = None) -> None:
        """Count one failed video, row ``row`` (its log line is written by :meth:`write`)."""
        if row is not None:
            self.state[1, row] = 1
            self.state[0, row] = 1
        self.failures.append((path, reason))
        log.warning("bad video %s: %s", path, reason)

    def write(self, path: str, reason: str, substitute: str | None) -> None:
        """Append ``path<TAB>reason<TAB>substitute=PATH`` (or ``no substitute``) to ``bad_videos.txt``."""
        line = f"{path}\t{reason}\t{'substitute=' + substitute if substitute else 'no substitute'}\n"
        if self.log_path:
            os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)

    def record(self, path: str, reason: str, substitute: str | None, row: int | None = None) -> None:
        """:meth:`fail` and :meth:`write` at once (``substitute``: a path that loaded, or None)."""
        self.fail(path, reason, row)
        self.write(path, reason, substitute)

    # -- the rule ----------------------------------------------------------------------------------
    def check(self, state: torch.Tensor | None = None, scope: str = "all DataLoader workers") -> None:
        """Apply the rule to ``state`` (default: this process's shared counters).

        Args:
            state: ``(2, num_rows)`` tried / failed flags, e.g. combined over ranks.
            scope: what the counts cover, quoted in the message.

        Raises:
            TooManyBadVideos: ``bad >= min_bad`` and ``bad > max_bad_fraction * tried``.
        """
        state = self.state if state is None else state
        bad, tried = int((state[1] > 0).sum()), int((state[0] > 0).sum())
        if bad < self.min_bad or bad <= self.max_bad_fraction * max(tried, 1):
            return
        reasons = dict(self.failures)
        rows = torch.nonzero(state[1] > 0).flatten().tolist()
        named = [self.paths[r] if self.paths is not None else f"row {r}" for r in rows[:20]]
        names = "\n".join(f"  {p}: {reasons.get(p, 'see ' + BAD_VIDEOS_FILE)}" for p in named)
        where = f" (all logged in {self.log_path})" if self.log_path else ""
        raise TooManyBadVideos(
            f"{bad} of {tried} videos tried failed to load ({scope}), above the allowed "
            f"{self.max_bad_fraction:.1%} (--max_bad_fraction; at least {self.min_bad} failures stop a run){where}; "
            f"check --data_root and the list, or run python -m snappix.tools.check_data on it. Failures:\n{names}")
