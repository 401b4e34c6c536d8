"""snappix: efficient video representation learning (coded exposure, masked pretraining, token selection)."""

__version__ = "0.1.0"
