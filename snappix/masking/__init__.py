"""Which tokens an encoder sees and a decoder predicts.

Data-side mask generators are plain callables returning boolean numpy masks with an exact,
documented number of ``True`` (= hidden) entries:

* :mod:`~snappix.masking.generators`: tube, random, running cell (VideoMAE / VideoMAEv2);
* :mod:`~snappix.masking.saliency`: SaViMAE saliency-aware masking (needs the sampled clip);
* :mod:`~snappix.masking.attention`: attention-guided masking (UMT / VideoMamba), on numpy or the device.

Model-side token selection: :mod:`~snappix.masking.kcenter` (K-centered patch sampling, ECCV'22); the
same selection as a data-side encoder mask: :mod:`~snappix.masking.kcenter_masking` (needs the sampled clip).
"""

from .attention import AttentionGuidedMasking, attention_guided_mask
from .generators import MASK_TYPES, RandomMasking, RunningCellMasking, TubeMasking, build_mask_generator
from .kcenter import kcenter_select
from .kcenter_masking import KCenterMaskGenerator
from .saliency import SALIENCY_MASK_TYPES, SAVI_SEMANTICS, SaliencyMaskGenerator, SaliencyMasking

__all__ = ["MASK_TYPES", "RandomMasking", "RunningCellMasking", "TubeMasking", "build_mask_generator",
           "AttentionGuidedMasking", "attention_guided_mask", "kcenter_select", "KCenterMaskGenerator",
           "SALIENCY_MASK_TYPES", "SAVI_SEMANTICS", "SaliencyMaskGenerator", "SaliencyMasking"]
