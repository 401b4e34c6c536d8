"""Resident memory of this process from /proc (Linux), for the CPU memory figures of the benchmarks.

``VmHWM`` (the high-water mark of the resident set) is used rather than ``ru_maxrss``, which Linux carries
over from the parent across fork + exec; :func:`reset_peak` lowers the mark to the current resident set
so that a later :func:`status_kib` ``("VmHWM")`` covers only what ran in between.
"""

from __future__ import annotations


def status_kib(field: str) -> int:
    """``field`` (e.g. ``"VmRSS"``, ``"VmHWM"``) of /proc/self/status, KiB.

    Raises:
        RuntimeError: the field is not there; OSError: no /proc (not Linux).
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> bool:
    """Reset ``VmHWM`` to the current resident set (write 5 to /proc/self/clear_refs, Linux >= 4.0).

    Returns False where the kernel refuses it (the peak then includes earlier work).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
