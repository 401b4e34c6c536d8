"""The base class of errors a user causes (a flag, a list, a file), shared by every layer.

Entry points (:func:`snappix.engine.cli.user_errors`) print such an error as one ``error: ...`` line
naming the file or flag and the fix, and exit with status 2; ``--debug`` or ``SNAPPIX_DEBUG=1`` shows the
traceback. This module imports nothing from snappix, so every layer may use it.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; its message names the file / flag and the fix."""


class UnknownModelError(UserError, ValueError):
    """``--model`` names no registered model; the message lists the close valid names."""
