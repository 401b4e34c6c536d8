"""Sensor layer: what the camera reads out from a linear clip (SnapPix, DAC'25; ``docs/methods/snappix.md``).

A sensor is an ``nn.Module`` from a raw clip ``(B, C, T, H, W)`` in linear [0, 1] to the read-out:
``(B, C, 1, H, W)`` for a coded exposure, the clip itself for an ordinary camera.

* :mod:`~snappix.sensor.coded_exposure`: :class:`CodedExposure` (tiled binary pattern, STE).
* :mod:`~snappix.sensor.baselines`: long / short exposure patterns, :class:`PamiExposure` (TPAMI'23).
* :mod:`~snappix.sensor.zoo`: :func:`build_sensor` by SnapPix ``coded_type`` name.
* :mod:`~snappix.sensor.patterns`: safe pattern loading (incl. SnapPix's numpy pickles), saving, PNG grid;
  SnapPix's released patterns ship as plain ``.npy`` in ``patterns_data/`` (:func:`load_shipped_pattern`).
* :mod:`~snappix.sensor.noise`: optional shot / read / ADC noise (:class:`SensorNoise`).
* :mod:`~snappix.sensor.decorrelation`: the decorrelation objective and pooled correlation metric.
* :mod:`~snappix.sensor.moments`: the exact objective over many clips from second moments (:class:`TileMoments`).
* :mod:`~snappix.sensor.refine`: greedy single-bit refinement of a binary pattern.

State-dict key of every coded layer: ``logits`` ``(P, T, sh, sw)`` (SnapPix's ``coded_layer.coded_weight``,
same meaning and initialisation); frozen layers keep it with ``requires_grad=False``. Optimiser hints:
``no_weight_decay()`` names it, and :class:`PamiExposure` has ``lr_scale = 1 / sigma``.
"""
from snappix.sensor.baselines import PamiExposure, long_exposure_pattern, short_exposure_pattern, short_slot
from snappix.sensor.coded_exposure import NORMALIZATIONS, CodedExposure, as_pattern_tensor, binarize_ste
from snappix.sensor.decorrelation import (K710_SSV2_MEAN, K710_SSV2_STD, CorrelationAccumulator, correlation_matrix,
                                          decorrelation_loss, decorrelation_rows, mean_abs_off_diagonal, off_diagonal,
                                          tile_rows)
from snappix.sensor.moments import TileMoments
from snappix.sensor.noise import SensorNoise
from snappix.sensor.patterns import (SHIPPED_PATTERN_DIR, SHIPPED_PATTERNS, PatternFileError, load_pattern,
                                     load_shipped_pattern, pattern_stats, plot_pattern_grid, save_pattern)
from snappix.sensor.refine import brute_force_flip_losses, greedy_flip_refine
from snappix.sensor.zoo import CODED_TYPES, IdentitySensor, build_sensor, sparse_random_pattern

__all__ = [
    "CODED_TYPES", "K710_SSV2_MEAN", "K710_SSV2_STD", "NORMALIZATIONS", "SHIPPED_PATTERN_DIR", "SHIPPED_PATTERNS",
    "CodedExposure", "PamiExposure", "IdentitySensor", "SensorNoise", "CorrelationAccumulator", "PatternFileError",
    "TileMoments", "brute_force_flip_losses", "greedy_flip_refine",
    "as_pattern_tensor", "binarize_ste", "build_sensor", "correlation_matrix", "decorrelation_loss",
    "decorrelation_rows", "load_pattern", "load_shipped_pattern", "long_exposure_pattern", "mean_abs_off_diagonal",
    "off_diagonal",
    "pattern_stats", "plot_pattern_grid", "save_pattern", "short_exposure_pattern", "short_slot",
    "sparse_random_pattern", "tile_rows",
]
