"""Which tokens an encoder sees and a decoder predicts.

Data-side mask generators are plain callables returning boolean numpy masks with an exact,
documented number of ``True`` (= hidden) entries.
"""

from .generators import MASK_TYPES, RandomMasking, RunningCellMasking, TubeMasking, build_mask_generator

__all__ = ["MASK_TYPES", "RandomMasking", "RunningCellMasking", "TubeMasking", "build_mask_generator"]
