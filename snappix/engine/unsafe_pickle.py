"""Why a pickle the safe loader cannot read is refused: old-format (non-zip) pickles, read without running them.

``torch.load(weights_only=True)`` reads a zip checkpoint's pickle with an allow-list and reports a
forbidden global by name. A file in the old format -- a bare ``pickle.dump`` or a legacy ``torch.save``
-- may instead fail with an opcode error (``Unsupported operand 149``), which does not say that the file
is refused for safety. :func:`old_format_refusal` names the globals such a file would import, found with
:func:`pickletools.genops` (which parses opcodes and executes nothing).
"""

from __future__ import annotations

import os
import pickletools
import zipfile

#: opcodes that push a string (the operands of STACK_GLOBAL)
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def pickle_globals(path: str | os.PathLike, limit: int = 3) -> list[str]:
    """Up to ``limit`` ``module.name`` globals the pickle in ``path`` would import (none are imported)."""
    found: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for op, arg, _pos in pickletools.genops(f):
                if op.name in _STRINGS and isinstance(arg, (str, bytes)):
                    strings.append(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
                elif op.name == "GLOBAL" and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                if len(found) >= limit or op.name == "STOP":
                    break
    except Exception:  # noqa: BLE001 - a truncated or foreign file: report what was found so far
        pass
    return [g for g in found if g not in ("collections.OrderedDict", "torch._utils._rebuild_tensor_v2")][:limit]


def old_format_refusal(path: str | os.PathLike) -> str | None:
    """The reason to refuse ``path`` when it is an old-format (non-zip) pickle, else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return None
    if zipfile.is_zipfile(path) or not head.startswith(b"\x80"):
        return None
    names = pickle_globals(path)
    what = f"it would import {', '.join(names)}" if names else "the safe loader cannot read its opcodes"
    return f"a pickle in the old (non-zip) format; {what}"
