"""A validation split carved from a training list, for model selection that never looks at the test list.

Saccade-VSSL's ``downstream.py`` keeps the epoch with the best *test* accuracy (docs/methods/saccade.md,
reference defect 1; Lai et al., IEEE TCSVT 2023, https://doi.org/10.1109/TCSVT.2023.3301698). snappix's
``run_finetuning.py --val_split F`` instead holds out a share ``F`` of the training list, stratified by class,
selects ``checkpoint-best.pth`` on it and tests on the untouched test list (:func:`carve_validation`).

The split depends only on the list's rows, ``fraction`` and ``seed``: the same on every rank, every run and
every machine (numpy's PCG64 generator, rows in list order).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .lists import ListEntry, read_list, write_list

__all__ = ["stratified_split", "carve_validation", "SPLIT_DIR"]

#: the folder under ``--output_dir`` where :func:`carve_validation` writes ``train.csv`` / ``val.csv``
SPLIT_DIR = "val_split"


def stratified_split(labels: Sequence[int], fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of a seeded, class-stratified ``(train, validation)`` split.

    Each class with ``n`` rows gives ``round(n * fraction)`` rows to validation, at least one when ``n >= 2``
    and never all of them (a class with a single row stays in training), chosen by one permutation per class
    drawn from ``np.random.default_rng([seed, class])``, so one class's choice does not depend on the others.

    Args:
        labels: int class per row (any non-negative ints; ``None`` is not allowed).
        fraction: share of each class held out, in ``(0, 1)``.
        seed: the split's seed (``run_finetuning.py`` passes ``--seed``).

    Returns:
        ``(train_idx, val_idx)``: sorted int64 arrays, disjoint, together ``0 .. len(labels) - 1``.

    Raises:
        ValueError: ``fraction`` outside ``(0, 1)``, a negative or missing label, or no row held out at all.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"the validation fraction must be in (0, 1), got {fraction}")
    if any(lb is None for lb in labels):
        raise ValueError("every row needs a label to stratify the validation split")
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if (y < 0).any():
        raise ValueError(f"labels must be >= 0, got {int(y.min())}")
    val = []
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        n = len(rows)
        k = min(max(int(round(n * fraction)), 1 if n >= 2 else 0), n - 1)
        if k > 0:
            perm = np.random.default_rng([int(seed), int(cls)]).permutation(n)
            val.extend(rows[perm[:k]].tolist())
    if not val:
        raise ValueError(f"a validation fraction of {fraction} of {len(y)} rows holds out nothing "
                         f"(every class has a single row?)")
    val_idx = np.sort(np.asarray(val, dtype=np.int64))
    train_idx = np.setdiff1d(np.arange(len(y), dtype=np.int64), val_idx)
    return train_idx, val_idx


def carve_validation(train_list: str, fraction: float, seed: int, out_dir: str, data_root: str = "",
                     allow_outside_root: bool = False) -> tuple[str, str]:
    """Split ``train_list`` into ``out_dir/val_split/train.csv`` and ``out_dir/val_split/val.csv``.

    The rows keep their text (paths relative to ``data_root``, labels) and their list order; the files are
    written atomically, so every rank of a distributed run may call this (they write the same bytes).

    Args:
        train_list: a ``path label`` classification list.
        fraction, seed: see :func:`stratified_split`.
        out_dir: the run's output folder.

    Returns:
        ``(train path, validation path)``.

    Raises:
        ValueError: see :func:`stratified_split`; snappix.data.lists.ListFormatError: a malformed row.
    """
    entries: list[ListEntry] = read_list(train_list, "cls", data_root, allow_outside_root)
    train_idx, val_idx = stratified_split([e.label for e in entries], fraction, seed)
    folder = os.path.join(out_dir, SPLIT_DIR)
    train_out, val_out = os.path.join(folder, "train.csv"), os.path.join(folder, "val.csv")
    write_list(train_out, [entries[i] for i in train_idx], "cls")
    write_list(val_out, [entries[i] for i in val_idx], "cls")
    return train_out, val_out
