"""Decorrelation training of the coded-exposure pattern (SnapPix, https://arxiv.org/abs/2504.04535).

A method layer above the engine: it reads videos with :mod:`snappix.data`, codes them with
:mod:`snappix.sensor` and uses the engine's flags, checkpoints, device and logging. Modules, one job each:

* :mod:`~snappix.decorrelation.data`: grey clip source, training and validation windows, video listing;
* :mod:`~snappix.decorrelation.evaluate`: the pooled mean |off-diagonal r| metric and its heatmap;
* :mod:`~snappix.decorrelation.train`: the training run (objectives, stages, resume state);
* :mod:`~snappix.decorrelation.run`: the three modes (train, baselines, test a pattern) behind :func:`run`;
* :mod:`~snappix.decorrelation.cli`: the flags and ``main`` of ``run_decorrelation_training.py``.

Objective (``--objective``):

* ``minibatch`` (SnapPix): per batch of clips, correlation of the coded tile pixels pooled over the
  batch, loss = mean squared off-diagonal r (``--loss l1``: mean |r|), AdamW on the pattern logits through
  the straight-through estimator;
* ``moments``: the clips of each epoch are folded into running second moments
  (:class:`snappix.sensor.moments.TileMoments`); then ``--moment_steps`` AdamW steps on the *exact*
  correlation over every clip seen so far. Same objective without mini-batch noise, and each step
  costs ~1 M multiply-adds instead of coding a batch.

The reported metric is always the mean |off-diagonal r| of the correlation pooled over *all* tiles of
*all* validation windows, so it does not depend on the batch size (``docs/decorrelation_protocol.md``).

Output directory: ``pattern_init.{pth,png}``, ``pattern_init_sparse.{pth,png}``, ``pattern_{epoch}.{pth,png}``
(0-based epochs, like SnapPix's pattern_0..pattern_4), ``pattern_refined.{pth,png}``, ``log.txt`` (one
JSON line per stage/epoch: ``train_loss``, ``val_mean_abs_r``, ``duty_cycle``, ``sparsity``, ...),
TensorBoard scalars in ``tb/``, ``config.yaml``, ``checkpoint-latest.pth`` (resume state, written
atomically every epoch: logits, optimiser, epoch, RNG states, moments), ``bad_videos.txt`` when a video
cannot be read and, in test mode, ``heatmap.png``.
"""
