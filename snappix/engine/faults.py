"""Fault injection for the reliability tests (``tests/reliability``); inert unless asked for.

Some faults can only be produced from outside a process at a precise moment: a ``kill -9`` in the
middle of a checkpoint save, or one rank of a DDP job dying while the other waits in a collective.
The engine calls :func:`inject` at a few named points; it does nothing unless the environment
variable ``SNAPPIX_FAULT_INJECT`` holds a matching rule. Rules (``;``-separated)::

    POINT:ACTION[@key=value[,key=value...]]

* ``POINT``: ``save`` (inside :func:`snappix.engine.checkpoint.save_checkpoint`, after the temporary
  file is written and before it is moved into place; context ``epoch``) or ``train_step`` (before the
  forward pass of each micro-batch; context ``epoch``, ``step`` = global optimiser step, ``rank``).
* ``ACTION``: ``kill`` (``SIGKILL`` this process: nothing runs after it, no cleanup) or ``raise``
  (:class:`InjectedFault`, an ordinary exception).
* the ``key=value`` pairs must all equal the context values for the rule to fire.

Example: ``SNAPPIX_FAULT_INJECT="save:kill@epoch=1"`` kills the process while it writes the
checkpoint of epoch 1; ``"train_step:raise@rank=1,epoch=1"`` makes rank 1 fail in epoch 1.
Nothing else reads the variable; it is never set by snappix itself.
"""

from __future__ import annotations

import os
import signal

ENV = "SNAPPIX_FAULT_INJECT"
POINTS = ("save", "train_step")
ACTIONS = ("kill", "raise")


class InjectedFault(RuntimeError):
    """Raised by a ``raise`` rule of ``SNAPPIX_FAULT_INJECT`` (tests only)."""


def _rules(spec: str) -> list[tuple[str, str, dict[str, str]]]:
    rules = []
    for raw in spec.split(";"):
        raw = raw.strip()
        if not raw:
            continue
        head, _, cond = raw.partition("@")
        point, _, action = head.partition(":")
        if point not in POINTS or action not in ACTIONS:
            raise ValueError(f"{ENV}: bad rule {raw!r}; expected POINT:ACTION[@k=v,...] with POINT in {POINTS} "
                             f"and ACTION in {ACTIONS}")
        conds = {}
        for pair in filter(None, cond.split(",")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"{ENV}: bad condition {pair!r} in rule {raw!r} (expected key=value)")
            conds[key.strip()] = value.strip()
        rules.append((point, action, conds))
    return rules


def inject(point: str, **context) -> None:
    """Fire the ``SNAPPIX_FAULT_INJECT`` rules for ``point`` whose conditions match ``context``.

    A no-op (one environment lookup) when the variable is unset.

    Raises:
        InjectedFault: a matching ``raise`` rule.
        ValueError: a malformed rule.
    """
    spec = os.environ.get(ENV)
    if not spec:
        return
    for rule_point, action, conds in _rules(spec):
        if rule_point != point or any(str(context.get(k)) != v for k, v in conds.items()):
            continue
        where = f"{point} " + " ".join(f"{k}={v}" for k, v in sorted(context.items()))
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"injected fault ({ENV}) at {where}")
