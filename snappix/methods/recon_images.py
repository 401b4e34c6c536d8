"""PNG grids of what a coded MAE sees and reconstructs: original frames, coded image, reconstruction.

Used by ``run_pretraining.py --save_recon N`` (:mod:`snappix.methods.masked_video`).
"""

from __future__ import annotations

import os

import torch

from snappix.models.patchify import patchify, unpatchify


@torch.no_grad()
def reconstruct(model, batch: dict, normalize_target: bool, global_mean: float, global_std: float,
                tubelet: int, patch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run ``model`` on ``batch`` and turn its prediction back into frames.

    Predicted tubelets are de-normalised (per-tubelet targets with the true tubelet mean/std, as in
    VideoMAE's visualisation; global targets with ``global_mean/std``); tubelets the decoder did not
    predict keep the original pixels.

    Returns:
        ``(recon (B, C, T, H, W) in [0, 1], coded (B, C, 1, H, W) or None)``.
    """
    video = batch["video"].float()
    outputs = model(video, **{k: batch[k] for k in ("encoder_mask", "decoder_mask") if k in batch})
    pred, query = outputs["pred"].float(), outputs["query_mask"]
    tokens = patchify(video, tubelet, patch)
    if normalize_target:
        sel = tokens[query].reshape(pred.shape)
        mean, std = sel.mean(-1, keepdim=True), sel.var(-1, unbiased=True, keepdim=True).sqrt()
        values = pred * (std + 1e-6) + mean
    else:
        values = pred * global_std + global_mean
    tokens = tokens.clone()
    tokens[query] = values.reshape(-1, values.shape[-1]).to(tokens.dtype)
    b, c, t, h, w = video.shape
    recon = unpatchify(tokens, tubelet, patch, (t // tubelet, h // patch, w // patch), c).clamp(0, 1)
    sensor = getattr(model, "sensor", None)
    coded = sensor(video).float() if sensor is not None else None
    return recon, coded


def save_recon_grid(video: torch.Tensor, recon: torch.Tensor, coded: torch.Tensor | None, path: str,
                    title: str = "", max_frames: int = 8) -> str:
    """One PNG per clip: row 1 original frames, row 2 reconstruction, coded image on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = video.shape[1]
    frames = list(range(0, t, max(1, t // max_frames)))[:max_frames]
    cols = len(frames) + (1 if coded is not None else 0)
    fig, axes = plt.subplots(2, cols, figsize=(1.5 * cols, 3.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    offset = 0
    if coded is not None:
        axes[0, 0].imshow(coded[0, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, 0].set_title("coded image", fontsize=7)
        offset = 1
    for j, f in enumerate(frames):
        axes[0, j + offset].imshow(video[0, f].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, j + offset].set_title(f"frame {f}", fontsize=7)
        axes[1, j + offset].imshow(recon[0, f].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[1, j + offset].set_title(f"recon {f}", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
