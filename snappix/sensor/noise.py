"""Optional image-sensor noise model for the coded-exposure layer (beyond SnapPix, which is noise-free).

Units. The layer hands over the **integrated exposure** ``phi = sum_t M_t * x_t / T`` of every pixel,
a fraction of the full well in [0, 1]: a pixel that sees intensity 1.0 in all T slots of the frame
period collects exactly ``full_well_e`` electrons. Then, per pixel:

1. electrons ``e = phi * full_well_e``;
2. photon shot noise (Poisson): ``e ~ Poisson(e)``; ``shot="gaussian"`` uses the Gaussian
   approximation ``e + sqrt(e) * N(0, 1)`` (the Poisson-Gaussian model of Foi et al. 2008),
   differentiable in ``e``; ``shot="poisson"`` samples exactly, with a straight-through gradient;
   ``shot="none"`` disables it;
3. read noise: ``+ read_noise_e * N(0, 1)`` electrons (rms);
4. saturation: clip to ``[0, full_well_e]``;
5. ADC: ``adc_bits`` bits over the full well, i.e. a conversion gain of ``full_well_e / (2**bits - 1)``
   electrons per digital number; the DN is rounded (straight-through gradient). ``adc_bits=None``
   keeps the analogue value;
6. back to a fraction of the full well, ``e / full_well_e``.

A pixel exposed in fewer slots integrates fewer electrons and so has a lower SNR after the layer's
per-pixel normalisation, which is the physical cost of sparse patterns that an ideal-sensor
simulation hides. Noise is drawn in train and eval mode alike (a real sensor is noisy at test time);
pass a ``generator`` for reproducible draws.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SHOT_MODELS", "SensorNoise"]

SHOT_MODELS = ("gaussian", "poisson", "none")


def _straight_through(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Forward ``value``, backward the gradient of ``surrogate``."""
    return surrogate + (value - surrogate).detach()


class SensorNoise(nn.Module):
    """Shot + read noise, saturation and ADC quantisation on the integrated exposure (see module docstring).

    Args:
        full_well_e: electrons at saturation (``phi = 1``), > 0; e.g. 10 000 for a small-pixel CMOS sensor.
        read_noise_e: read noise in electrons rms, >= 0.
        adc_bits: ADC resolution in bits (1-24), or None for no quantisation.
        shot: one of :data:`SHOT_MODELS`.
        generator: optional RNG for the noise draws (must live on the input's device).

    Input/Output:
        ``phi``: float tensor of any shape, fraction of the full well (nominally [0, 1]); returns the noisy
        fraction, same shape/dtype, in [0, 1] (saturated), quantised to ``k / (2**bits - 1)`` if ``adc_bits``.

    Raises:
        ValueError: out-of-range parameters, or a malformed :meth:`from_spec` string.
    """

    def __init__(self, full_well_e: float = 10000.0, read_noise_e: float = 2.0, adc_bits: int | None = 10,
                 shot: str = "gaussian", generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not full_well_e > 0:
            raise ValueError(f"full_well_e must be > 0 electrons, got {full_well_e}")
        if read_noise_e < 0:
            raise ValueError(f"read_noise_e must be >= 0 electrons, got {read_noise_e}")
        if adc_bits is not None and not 1 <= int(adc_bits) <= 24:
            raise ValueError(f"adc_bits must be in 1..24 or None, got {adc_bits}")
        if shot not in SHOT_MODELS:
            raise ValueError(f"shot must be one of {SHOT_MODELS}, got {shot!r}")
        self.full_well_e, self.read_noise_e = float(full_well_e), float(read_noise_e)
        self.adc_bits = None if adc_bits is None else int(adc_bits)
        self.shot, self.generator = shot, generator

    @classmethod
    def from_spec(cls, spec: str) -> "SensorNoise | None":
        """Parse ``"full_well=10000,read_noise=2,adc_bits=10,shot=gaussian"`` (any subset; ``adc_bits=none``).

        ``""``, ``"none"`` or ``"off"`` return None (no noise). Keys: full_well, read_noise, adc_bits, shot.
        """
        spec = spec.strip()
        if spec.lower() in ("", "none", "off"):
            return None
        names = {"full_well": "full_well_e", "read_noise": "read_noise_e", "adc_bits": "adc_bits", "shot": "shot"}
        kwargs: dict = {}
        for item in spec.split(","):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in names:
                raise ValueError(f"bad sensor noise item {item!r} in {spec!r}; "
                                 f"expected key=value with keys {sorted(names)}")
            value = value.strip()
            if key == "shot":
                kwargs["shot"] = value
            elif key == "adc_bits":
                kwargs["adc_bits"] = None if value.lower() == "none" else int(value)
            else:
                kwargs[names[key]] = float(value)
        return cls(**kwargs)

    def _randn(self, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, dtype=like.dtype, device=like.device, generator=self.generator)

    def forward(self, phi: torch.Tensor) -> torch.Tensor:
        electrons = phi * self.full_well_e
        if self.shot == "gaussian":
            electrons = electrons + electrons.clamp(min=0).sqrt() * self._randn(electrons)
        elif self.shot == "poisson":
            mean_e = electrons.detach().clamp(min=0).float()
            sample = torch.poisson(mean_e, generator=self.generator).to(electrons.dtype)
            electrons = _straight_through(sample, electrons)
        if self.read_noise_e > 0:
            electrons = electrons + self.read_noise_e * self._randn(electrons)
        electrons = electrons.clamp(0.0, self.full_well_e)
        out = electrons / self.full_well_e
        if self.adc_bits is not None:
            levels = float(2 ** self.adc_bits - 1)
            out = _straight_through(torch.round(out * levels) / levels, out)
        return out

    def extra_repr(self) -> str:
        return (f"full_well_e={self.full_well_e:g}, read_noise_e={self.read_noise_e:g}, adc_bits={self.adc_bits}, "
                f"shot={self.shot!r}")
