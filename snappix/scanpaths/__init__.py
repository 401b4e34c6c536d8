"""G-Eymol scanpaths from raw video, in the ``scan_idx_7`` format of Saccade-VSSL.

G-Eymol: Zanca, Melacci, Gori, "Gravitational Laws of Focus of Attention", IEEE TPAMI 2019,
https://ieeexplore.ieee.org/document/8730418. Saccade-VSSL: Lai et al., IEEE TCSVT 2023.
Description, parameters and file format: ``docs/methods/saccade.md``, "Scanpaths (G-Eymol)".

Modules, one job each:

* :mod:`.features`: per-frame channels (B, G, R, intensity, 4 Gabor orientations; optional Farneback
  motion) and their Sobel gradient masses;
* :mod:`.field`: the gravitational force map of a frame for every gaze position (FFT correlation and a
  window maximum), and the direct per-position sum it replaces;
* :mod:`.dynamics`: the 2nd-order gaze ODE over one frame (``scipy.integrate.odeint``);
* :mod:`.ior`: inhibition of return;
* :mod:`.geymol`: the model over a frame stream (seeded);
* :mod:`.fixations`: dispersion-based fixation detection and ``[cell, start, end]`` rows;
* :mod:`.scanfile`: reading and writing ``scan_idx_7/<video>.txt`` files;
* :mod:`.pipeline`: one video file or frame folder end to end.

The command line is ``python -m snappix.tools.scanpaths``.
"""

from .field import GravityField, direct_force, gravity_kernel, window_size
from .fixations import Fixation, detect_fixations, fixation_rows, grid_cell
from .geymol import GEymol, GEymolParams, simulate_gaze
from .pipeline import ScanpathResult, compute_scanpath, video_seed
from .scanfile import ScanpathFormatError, format_scanpath, read_scanpath, validate_rows, write_scanpath

__all__ = ["GravityField", "direct_force", "gravity_kernel", "window_size", "Fixation", "detect_fixations",
           "fixation_rows", "grid_cell", "GEymol", "GEymolParams", "simulate_gaze", "ScanpathResult",
           "compute_scanpath", "video_seed", "ScanpathFormatError", "format_scanpath", "read_scanpath",
           "validate_rows", "write_scanpath"]
