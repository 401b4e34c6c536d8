"""Numbers that several layers share, defined once here (the lowest layer that needs them).

* :data:`K710_SSV2_MEAN` / :data:`K710_SSV2_STD`: mean and standard deviation of the linear-intensity
  grey frames of the preprocessed Kinetics-710 + Something-Something V2 training videos, values in
  [0, 1]. SnapPix normalises coded images and reconstruction targets with them
  (``docs/methods/snappix.md``, "Normalisation"). Used by the transforms (:mod:`snappix.data.transforms`),
  the sensor's decorrelation objective (:mod:`snappix.sensor.decorrelation`, re-exported as
  ``snappix.sensor.K710_SSV2_MEAN``), the models' input normalisation and the coded reconstruction
  objective (:mod:`snappix.objectives.reconstruction`).
"""

from __future__ import annotations

__all__ = ["K710_SSV2_MEAN", "K710_SSV2_STD"]

#: grey mean of the preprocessed K710 + SSV2 training videos (linear, [0, 1]); a Python float
K710_SSV2_MEAN = 0.2277
#: grey standard deviation of the same frames; a Python float
K710_SSV2_STD = 0.2425
