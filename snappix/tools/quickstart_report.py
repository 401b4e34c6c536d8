"""The quickstart's last stage: results table, coded-image example, and a map of the outputs.

    python -m snappix.tools.quickstart_report --out_dir outputs/quickstart --pattern P.pth \\
        --run "coded ViT (SnapPix)=outputs/quickstart/ft_coded" --run ... [--total_seconds S]

Writes ``OUT/results.md`` (the :mod:`snappix.tools.results_table` table, training times from
``OUT/timings.tsv``) and ``OUT/coded_example.png`` (one validation clip: 4 of its 16 frames, the
single frame, the long exposure and the coded image the learned pattern makes of it), and prints
where the pattern, reconstructions, confusion matrices and TensorBoard logs are.
"""

from __future__ import annotations

import argparse
import glob
import os

import numpy as np
import torch

from snappix.tools import results_table as RT


def coded_example(out_png: str, data_root: str, val_list: str, pattern: str, sampling_rate: int,
                  num_frames: int = 16, size: int = 112) -> str:
    """Save frames / short / long / coded views of the first validation clip; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from snappix.data.lists import read_list
    from snappix.data.video import open_video
    from snappix.sensor import build_sensor

    entry = read_list(val_list, "cls", data_root)[0]
    with open_video(entry.path) as reader:
        n = reader.num_frames
        start = max(0, (n - (num_frames - 1) * sampling_rate - 1) // 2)
        idx = np.minimum(start + np.arange(num_frames) * sampling_rate, n - 1)
        frames = reader.get_frames(idx)[..., 0].astype(np.float32) / 255.0
    h, w = frames.shape[1:]
    top, left = (h - size) // 2, (w - size) // 2
    clip = torch.from_numpy(frames[:, top:top + size, left:left + size].copy())[None, None]  # 1,1,T,H,W
    views = {}
    for name, kwargs in (("short (1 frame)", dict(coded_type="short")), ("long (mean of 16)", dict(coded_type="long")),
                         ("coded (learned pattern)", dict(coded_type="decor_fix", pattern_path=pattern))):
        sensor = build_sensor(num_frames=num_frames, **kwargs).eval()
        with torch.no_grad():
            views[name] = sensor(clip)[0, 0, 0].numpy()  # (B, C, 1, H, W) -> H x W
    fig, axes = plt.subplots(1, 7, figsize=(17, 3))
    for ax, t in zip(axes[:4], (0, 5, 10, 15)):
        ax.imshow(clip[0, 0, t].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"frame {t}")
    for ax, (name, img) in zip(axes[4:], views.items()):
        ax.imshow(img, cmap="gray")
        ax.set_title(name)
    for ax in axes:
        ax.axis("off")
    fig.suptitle(f"{entry.rel_path} (label {entry.label}): what each sensor reads out")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--run", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--pattern", default=None, help="the learned pattern (.pth) for the coded-image example")
    p.add_argument("--total_seconds", type=float, default=None, help="wall time of the pipeline so far")
    args = p.parse_args(argv)
    out = args.out_dir
    timings = RT.read_timings(os.path.join(out, "timings.tsv"))
    rows = []
    for spec in args.run:
        name, _, run_dir = spec.partition("=")
        rows.append(RT.collect(name, run_dir, timings))
    notes = [
        "Top-1 on the validation clips: video-level, softmax averaged over the views (segments x crops) "
        "of each clip, from each run's checkpoint-best.pth (the quickstart validates once, after the last "
        "epoch, so that is the final model). Tokens, GFLOPs (torch.utils.flop_counter, "
        "one forward pass) and pixels read out are per 16-frame clip. Train time: wall time of run_finetuning.py "
        "(training, periodic validation and the multi-view test).",
    ]
    pt = timings.get("coded MAE pretraining")
    pretrained = [r.name for r in rows if r.init == "pretrained"]
    if pt is not None and pretrained:
        notes.append(f"Started from the coded MAE pretraining ({pt:.0f} s): {'; '.join(pretrained)}.")
    if args.total_seconds is not None:
        notes.append(f"Whole quickstart pipeline (after the environment set-up): {args.total_seconds / 60:.1f} min.")
    text = f"## Quickstart results\n\n{RT.format_table(rows)}\n\n" + "\n\n".join(notes) + "\n"
    print()
    print(text)
    from snappix.data.lists import write_lines

    write_lines(os.path.join(out, "results.md"), text.splitlines())

    figures = {}
    cfg = RT.load_run_config(args.run[0].partition("=")[2])
    if args.pattern and cfg.get("test_path"):
        try:
            figures["coded image example"] = coded_example(os.path.join(out, "coded_example.png"), cfg.get("data_root", ""),
                                                           cfg["test_path"], args.pattern, int(cfg.get("sampling_rate", 1)),
                                                           int(cfg.get("num_frames", 16)), int(cfg.get("input_size", 112)))
        except Exception as exc:  # a figure must never hide the table
            print(f"(coded-image example not written: {exc})")
    pattern_png = os.path.splitext(args.pattern)[0] + ".png" if args.pattern else None
    if pattern_png and os.path.isfile(pattern_png):
        figures["learned pattern"] = pattern_png
    heatmap = os.path.join(out, "decorrelation", "heatmap.png")
    if os.path.isfile(heatmap):
        figures["pattern correlation heatmap"] = heatmap
    recon = sorted(glob.glob(os.path.join(out, "pretrain", "recon", "*.png")))
    if recon:
        figures["reconstruction grid (coded image -> 16 frames)"] = recon[-1]
    for spec in args.run:
        name, _, run_dir = spec.partition("=")
        cm = os.path.join(run_dir, "test", "confusion_matrix.png")
        if os.path.isfile(cm):
            figures[f"confusion matrix, {name}"] = cm
    print("outputs:")
    print(f"  {'results table':48s} {os.path.join(out, 'results.md')}")
    for what, path in figures.items():
        print(f"  {what:48s} {path}")
    print(f"  {'TensorBoard logs':48s} tensorboard --logdir {os.path.join(out, 'tensorboard')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
