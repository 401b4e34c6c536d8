"""The user error of decorrelation training that is a matter of flags alone."""
from __future__ import annotations

from snappix.engine.args import ConfigError

__all__ = ["FlagError"]


class FlagError(ConfigError):
    """Flag values that cannot work (together or with the data read); the message names the flags and the fix.

    ``run_decorrelation_training.py`` reports it like argparse reports a usage error: one ``error: ...``
    line on stderr and exit status 2, also when ``main`` is called from Python with an explicit ``argv``.
    """
