"""Cost of the coded-exposure layer versus a plain mean over T, measured side by side in one run.

A batch of 64 clips ``(64, 1, 16, 112, 112)`` (float32, uniform in [0, 1]); forward + backward of:

* ``CodedExposure`` with a trainable pattern (STE; gradient to the 1024 logits and to the clip);
* the same with a frozen pattern (gradient to the clip only, the ``decor_fix`` setting);
* the same, trainable, with the clip not requiring a gradient (decorrelation training);
* the reference: ``x.mean(dim=2, keepdim=True)`` (a long exposure) with the clip requiring a gradient.

Rounds alternate reference and candidate; the median time of each is reported with the ratio
candidate / reference (1.0 = as cheap as averaging the frames). Also prints the exact decorrelation
step of ``--objective moments`` (:class:`snappix.sensor.moments.TileMoments`) for scale.

    python benchmarks/bench_sensor.py [--batch 64] [--rounds 15] [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from snappix.sensor import CodedExposure, decorrelation_loss  # noqa: E402
from snappix.sensor.moments import TileMoments  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def forward_backward(layer, x: torch.Tensor):
    def run():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 1, args.frames, args.size, args.size, generator=gen).to(device)
    x_grad = x.clone().requires_grad_(True)
    trainable = CodedExposure(args.frames, 8, generator=gen).to(device)
    frozen = CodedExposure(args.frames, 8, trainable=False, generator=gen).to(device)

    def mean_over_t():
        x_grad.grad = None
        x_grad.mean(dim=2, keepdim=True).sum().backward()

    cases = {
        "CodedExposure, trainable pattern, clip grad": forward_backward(trainable, x_grad),
        "CodedExposure, frozen pattern,    clip grad": forward_backward(frozen, x_grad),
        "CodedExposure, trainable pattern, no clip grad": forward_backward(trainable, x),
    }
    print(f"batch {tuple(x.shape)} float32 on {device}, {torch.get_num_threads()} CPU threads, "
          f"torch {torch.__version__}, median of {args.rounds} rounds (after 2 warm-up rounds)")
    for _ in range(2):
        mean_over_t()
        for fn in cases.values():
            fn()
    ref_times = {name: [] for name in cases}
    cand_times = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            ref_times[name].append(timed(mean_over_t, device))
            cand_times[name].append(timed(fn, device))
    ref_all = statistics.median(t for ts in ref_times.values() for t in ts)
    print(f"{'mean over T (reference), clip grad':<48s} {ref_all * 1e3:8.2f} ms")
    for name in cases:
        ref, cand = statistics.median(ref_times[name]), statistics.median(cand_times[name])
        print(f"{name:<48s} {cand * 1e3:8.2f} ms | reference in the same rounds {ref * 1e3:7.2f} ms | "
              f"ratio {cand / ref:5.2f}")

    moments = TileMoments(args.frames, 8, device=device)
    moments.update(x[: min(8, args.batch)])
    step_times = []
    for _ in range(args.rounds + 2):
        def step():
            trainable.zero_grad(set_to_none=True)
            decorrelation_loss(moments.correlation(trainable.mask())).backward()
        step_times.append(timed(step, device))
    print(f"{'exact moments objective, forward+backward':<48s} {statistics.median(step_times[2:]) * 1e3:8.2f} ms "
          f"(independent of the number of clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
