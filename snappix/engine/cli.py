"""User errors in one line: the wrapper every entry point's ``main()`` goes through.

An error the user caused -- a :class:`snappix.errors.UserError` (malformed list, too many bad videos,
bad or mismatched checkpoint, bad pattern or config file, unknown model, bad flag combination, ...) or a
``FileNotFoundError`` (a list, checkpoint or video folder that is not there) -- is printed to stderr as

    error: <message naming the file / flag and the fix>

and the process exits with status 2, without a traceback. ``--debug`` on the command line or
``SNAPPIX_DEBUG=1`` lets the exception through with its traceback, and so does a call from Python with an
explicit ``argv`` (``main([...])``: the caller gets the exception). Under torchrun the wrapper sits inside
``@record``: a rank exits non-zero (2) and the launcher stops the others, as for any failure.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable, Sequence

from snappix.errors import UserError

#: exception types printed as one line (the project's user errors, and missing files)
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)
#: exit status of a user error (argparse uses 2 for usage errors too)
USER_ERROR_STATUS = 2
#: detail lines of a multi-line message kept below the ``error:`` line
MAX_DETAIL_LINES = 10
DEBUG_HELP = "on an error caused by the input, show the full traceback (also SNAPPIX_DEBUG=1)"


def add_debug_arg(parser) -> None:
    """Add ``--debug`` (see :data:`DEBUG_HELP`) to an ``argparse`` parser or group."""
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """True when ``--debug`` is in ``argv`` (default ``sys.argv[1:]``) or ``SNAPPIX_DEBUG`` is 1/true/yes."""
    args = sys.argv[1:] if argv is None else list(argv)
    env = os.environ.get("SNAPPIX_DEBUG", "").strip().lower()
    return "--debug" in args or env in ("1", "true", "yes", "on")


def format_user_error(exc: BaseException) -> str:
    """``error: <first line>`` plus up to :data:`MAX_DETAIL_LINES` indented detail lines of the message."""
    if isinstance(exc, FileNotFoundError) and exc.filename:  # raised by open() & co.: name the file
        text = f"file not found: {exc.filename}"
    else:
        text = str(exc)
    lines = [line for line in text.strip().splitlines() if line.strip()] or [type(exc).__name__]
    out = [f"error: {lines[0].strip()}"]
    out += [f"  {line.strip()}" for line in lines[1:MAX_DETAIL_LINES + 1]]
    if len(lines) > MAX_DETAIL_LINES + 1:
        out.append(f"  ... ({len(lines) - MAX_DETAIL_LINES - 1} more lines; --debug shows everything)")
    return "\n".join(out)


def user_errors(main: Callable) -> Callable:
    """Decorate an entry point ``main(argv=None, ...)``: user errors become one line and exit status 2.

    Only for a command-line run (``argv`` None, read from ``sys.argv``); with an explicit ``argv`` the
    exception propagates to the Python caller.

    Raises:
        SystemExit: status :data:`USER_ERROR_STATUS` after printing a :data:`USER_ERRORS` exception
            (re-raised unchanged with ``--debug`` / ``SNAPPIX_DEBUG=1``); other exceptions pass through.
    """

    @functools.wraps(main)
    def wrapper(argv=None, *args, **kwargs):
        if argv is not None or debug_requested(argv):
            return main(argv, *args, **kwargs)
        try:
            return main(argv, *args, **kwargs)
        except USER_ERRORS as exc:
            print(format_user_error(exc), file=sys.stderr, flush=True)
            raise SystemExit(USER_ERROR_STATUS) from None

    return wrapper
