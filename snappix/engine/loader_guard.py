"""DataLoader workers that die or hang are reported with the item they were loading.

PyTorch reports a dead worker as ``DataLoader worker (pid 1234) is killed by signal: Killed`` and a
stuck one (with ``timeout``) as ``DataLoader timed out after 600 seconds``; neither says which video
was being decoded. :class:`TrackedDataset` wraps the dataset so that each worker writes ``(pid, item
being loaded, last item)`` into a small shared-memory table before and after ``dataset[item]``;
:func:`loader_errors` turns those PyTorch errors into a :class:`DataLoaderError` whose message lists
every worker, its pid, and the item (with its file and list line when the dataset can describe it)::

    DataLoader worker failed: DataLoader worker (pid 4711) is killed by signal: Killed.
      worker 1 (pid 4711): was loading item 5: /data/k400/abc.mp4 (train.csv:6)
      worker 0 (pid 4710): idle (last item 4: /data/k400/abd.mp4 (train.csv:5))

``--loader_timeout SECONDS`` (:func:`snappix.engine.runner.build_loader`) bounds the wait for one
batch; 0 waits forever.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Iterator

import torch
from torch.utils.data import Dataset, get_worker_info

from .distributed import all_reduce_max, get_world_size

_PID, _CURRENT, _LAST = 0, 1, 2


class DataLoaderError(RuntimeError):
    """A DataLoader worker died, hung past ``--loader_timeout`` or exited; the message names the items
    the workers were loading."""


class TrackedDataset(Dataset):
    """``dataset`` plus a shared ``(num_workers, 3)`` int64 table ``[pid, current item, last item]``.

    Attribute access falls through to the wrapped dataset (``set_epoch``, ``entries``, ...), so the
    wrapper can replace it in a DataLoader. Items are described by ``dataset.describe_item(i)`` when
    it exists, else as ``item i``.

    Args:
        dataset: any map-style dataset.
        num_workers: DataLoader workers (the table has ``max(num_workers, 1)`` rows).
    """

    def __init__(self, dataset: Dataset, num_workers: int):
        self.dataset = dataset
        self.slots = torch.full((max(int(num_workers), 1), 3), -1, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: int) -> Any:
        info = get_worker_info()
        slot = self.slots[info.id if info is not None else 0]
        slot[_PID] = os.getpid()
        slot[_CURRENT] = int(item)
        out = self.dataset[item]
        slot[_LAST] = int(item)
        slot[_CURRENT] = -1
        return out

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "slots") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def describe(self, item: int) -> str:
        """``item N: <what dataset.describe_item says>`` (never raises)."""
        describe = getattr(self.dataset, "describe_item", None)
        if describe is None:
            return f"item {item}"
        try:
            return f"item {item}: {describe(item)}"
        except Exception:  # noqa: BLE001 - a report must not fail
            return f"item {item}"

    def report(self) -> list[str]:
        """One line per worker that ran: pid, the item being loaded (or idle and the last item)."""
        lines = []
        for wid, (pid, current, last) in enumerate(self.slots.tolist()):
            if pid < 0:
                continue
            if current >= 0:
                lines.append(f"worker {wid} (pid {pid}): was loading {self.describe(current)}")
            elif last >= 0:
                lines.append(f"worker {wid} (pid {pid}): idle (last {self.describe(last)})")
        return lines


_LOADER_FAILURE = re.compile(r"DataLoader worker|DataLoader timed out|worker.*exited unexpectedly")


def is_loader_failure(exc: BaseException) -> bool:
    """True for PyTorch's dead / hung / exited DataLoader worker errors."""
    return isinstance(exc, RuntimeError) and not isinstance(exc, DataLoaderError) and bool(
        _LOADER_FAILURE.search(str(exc)))


def check_bad_videos_all_ranks(dataset: Any) -> None:
    """Apply the bad-video rule to the counts of every DataLoader worker of every rank.

    Called by every rank at the end of each training epoch and evaluation (a collective: all ranks
    call it, so none waits alone). ``dataset`` (or the one a :class:`TrackedDataset` wraps) without a
    ``bad_video_state()`` is left alone. The tried / failed flags of each list row are combined by an
    element-wise maximum, so a row counts once however many ranks tried it.

    Raises:
        snappix.data.datasets.TooManyBadVideos: on every rank, when the combined counts break the rule
            of :mod:`snappix.data.bad_videos`.
    """
    state_fn = getattr(dataset, "bad_video_state", None)
    if state_fn is None:
        return
    state = state_fn()
    world = get_world_size()
    combined = all_reduce_max(state) if world > 1 else state
    dataset.tracker.check(combined, scope=f"all DataLoader workers of {world} ranks" if world > 1
                          else "all DataLoader workers")


@contextlib.contextmanager
def loader_errors(loader: Any) -> Iterator[None]:
    """Inside: a dead or hung DataLoader worker of ``loader`` raises :class:`DataLoaderError` naming
    the items being loaded (when ``loader.dataset`` is a :class:`TrackedDataset`).

    PyTorch signals a dead worker through a SIGCHLD handler that raises in the main thread wherever
    it is (fetching a batch or in the forward pass), hence a context around the whole loop rather than
    around ``next()``.
    """
    try:
        yield
    except RuntimeError as exc:
        if not is_loader_failure(exc):
            raise
        dataset = getattr(loader, "dataset", None)
        lines = dataset.report() if isinstance(dataset, TrackedDataset) else []
        timeout = getattr(loader, "timeout", 0)
        hint = (f" (--loader_timeout {timeout:g} s: raise it if decoding is just slow)"
                if "timed out" in str(exc) else "")
        detail = "\n  ".join(lines) if lines else "(no per-worker record: dataset not wrapped by build_loader)"
        raise DataLoaderError(f"DataLoader worker failed: {exc}{hint}\n  {detail}") from exc
