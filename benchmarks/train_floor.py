"""What a training step costs beyond its floor: precision, profiler breakdown, optimiser kernels.

Used by ``bench_train.py`` (three sections after its attention comparison):

* :func:`precision_section`: step time in fp32 and in bf16 autocast, side by side, and what
  ``--precision auto`` picks on this machine (and why);
* :func:`profile_section`: a ``torch.profiler`` table of one training step (forward, backward, optimiser):
  the top ops by self CPU time and the share spent in matrix-multiply (GEMM / convolution) and attention
  kernels, against everything else (element-wise ops, norms, copies, the optimiser: the overhead we own);
* :func:`optimizer_section`: AdamW step time with the multi-tensor (``foreach``) kernel versus the fused
  kernel on the model's parameters (``snappix.engine.optim`` uses fused on the CPU).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Callable

import torch

from snappix.engine.native_bf16 import native_bf16

#: aten ops counted as matrix multiplication (dense GEMM, batched GEMM, convolution)
GEMM_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
            "aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::addmv",
            "aten::mv", "aten::_mkldnn_convolution", "aten::mkldnn_linear", "aten::_addmm_activation")
#: attention kernels (SDPA's fused CPU kernels, forward and backward)
ATTENTION_OPS = ("aten::_scaled_dot_product_flash_attention_for_cpu",
                 "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                 "aten::_scaled_dot_product_efficient_attention", "aten::_efficient_attention_forward",
                 "aten::_efficient_attention_backward", "aten::_scaled_dot_product_flash_attention",
                 "aten::_flash_attention_forward", "aten::_flash_attention_backward")


def timed(fn: Callable[[], None], reps: int, warmup: int = 1) -> list[float]:
    """Wall seconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def precision_section(step: Callable[[str], None], device: str, reps: int) -> None:
    """Print the step time in fp32 and bf16 (``step(precision)`` runs one training step) and auto's choice."""
    native, reason = native_bf16(device)
    times = {}
    for precision in ("fp32", "bf16", "fp32", "bf16")[: 2 if reps == 0 else 4]:
        times.setdefault(precision, []).extend(timed(lambda: step(precision), max(reps // 2, 1)))
    med = {k: statistics.median(v) for k, v in times.items()}
    auto = "bf16" if native else "fp32"
    print(f"precision (median of {sum(len(v) for v in times.values()) // 2} steps each, alternating):")
    for k in ("fp32", "bf16"):
        mark = "   <- auto" if k == auto else ""
        print(f"  {k}  {med[k]:7.3f} s/step{mark}")
    print(f"  bf16 / fp32 step time: {med['bf16'] / med['fp32']:.2f}x;  --precision auto -> {auto}: {reason}")


def _category(name: str) -> str:
    if name in ATTENTION_OPS:
        return "attention"
    if name in GEMM_OPS:
        return "GEMM / conv"
    return "other"


def profile_section(step: Callable[[], None], top: int = 12) -> dict[str, float]:
    """Profile one training step (after a warm-up step); print the top ops and the category shares.

    Shares use each op's self CPU time, so nested ops are not counted twice. Returns the shares.
    """
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for evt in prof.key_averages():
        if evt.key.startswith("ProfilerStep") or evt.self_cpu_time_total <= 0:
            continue
        totals[evt.key] += evt.self_cpu_time_total
        counts[evt.key] += evt.count
    whole = sum(totals.values()) or 1.0
    print(f"profile of one training step (torch.profiler, self CPU time, {whole / 1e6:.2f} s in ops):")
    for name, us in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {us / whole:6.1%}  {us / 1e3:9.1f} ms  {counts[name]:5d} calls  {name}  [{_category(name)}]")
    shares: dict[str, float] = defaultdict(float)
    for name, us in totals.items():
        shares[_category(name)] += us / whole
    print(f"  GEMM / conv {shares['GEMM / conv']:.1%} + attention {shares['attention']:.1%} = "
          f"{shares['GEMM / conv'] + shares['attention']:.1%} of the step (target >= 80 %); "
          f"everything else {shares['other']:.1%}")
    return dict(shares)


def optimizer_section(model: torch.nn.Module, reps: int) -> None:
    """AdamW step time, foreach versus fused, on ``model``'s parameters (random gradients)."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.randn_like(p) for p in params]
    results = {}
    for kind in ("foreach", "fused"):
        copies = [p.detach().clone().requires_grad_(True) for p in params]
        for c, g in zip(copies, grads):
            c.grad = g
        opt = torch.optim.AdamW(copies, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, **{kind: True})
        results[kind] = statistics.median(timed(opt.step, reps))
    n = sum(p.numel() for p in params) / 1e6
    print(f"AdamW step on {n:.1f} M parameters: foreach {results['foreach'] * 1e3:.1f} ms, "
          f"fused {results['fused'] * 1e3:.1f} ms ({results['foreach'] / results['fused']:.1f}x; "
          f"snappix uses {'fused' if next(model.parameters()).device.type == 'cpu' else 'foreach'} here)")
