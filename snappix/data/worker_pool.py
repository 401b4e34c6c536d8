"""Process pools whose workers exit when their parent is killed (the data doctor's ``--workers N``).

A SIGKILLed parent cannot shut its pool down; without this its workers were re-parented and kept
decoding (130 MB each, still alive 100 s later).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def die_with_parent(parent_pid: int) -> None:
    """Pool worker initializer: exit when the process ``parent_pid`` (the data doctor) dies.

    On Linux the kernel sends SIGKILL to the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
    everywhere, a daemon thread also checks every 0.5 s that ``parent_pid`` is still alive and
    is still the parent, and ends the worker (``os._exit(1)``) otherwise.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass  # the watchdog below still works
    ppid = os.getppid()  # parent_pid itself, or a fork server when the pool does not fork

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            if os.getppid() != ppid:  # re-parented: the parent (or the fork server) died
                os._exit(1)

    import threading

    threading.Thread(target=watch, name="check_data-parent-watch", daemon=True).start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers`` (>= 1) processes that exit with this process (:func:`die_with_parent`).

    Raises:
        ValueError: ``workers < 1`` (from :class:`concurrent.futures.ProcessPoolExecutor`).
    """
    return ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),))
