"""Training step of coded MAE pretraining: attention kernels, precision, where the time goes, optimiser.

Sections, all measured in one run: (1) fused SDPA attention versus explicit attention; (2) the step in
fp32 and in bf16 autocast, and what ``--precision auto`` picks here; (3) a ``torch.profiler`` breakdown
of one step (top ops; share in GEMM / attention kernels versus everything else); (4) AdamW ``foreach``
versus ``fused`` step time (see ``train_floor.py``). ``--no_floor`` runs section (1) only.

Two copies of the same model (same seed, same weights), one with ``attn_impl="sdpa"``
(:func:`torch.nn.functional.scaled_dot_product_attention`) and one with ``attn_impl="explicit"``
(``softmax(QK^T / sqrt(d)) V`` written out), each with its own AdamW. Default workload: SnapPix ViT-S
pretraining (``pretrain_coded_videomae_small_patch8_112``), batch 8 of 16 x 112 x 112 grey clips, tube
0.85 encoder masks and running-cell 0.5 decoder masks from :func:`snappix.masking.build_mask_generator`,
MSE of the prediction against a random target, one AdamW step per batch.

Rounds alternate the two variants (the order flips every round); each round times ``--steps`` training
steps of each after ``--warmup`` untimed ones; the median clips/s over rounds is reported, and the ratio
sdpa / explicit (> 1 = SDPA faster), both from wall-clock time and from this process's CPU time (the
latter is less disturbed by other processes on a shared machine; the load average is printed too).
On a loaded machine ``--threads 1`` gives much steadier figures: with several threads, each parallel
region waits for its slowest (descheduled) thread.

Peak memory, measured honestly per device:

* ``cuda``: ``torch.cuda.max_memory_allocated`` over the timed steps of each variant (allocator peak,
  including parameters, gradients and AdamW states, which are identical for both), and that peak minus
  the memory allocated before the steps ("step" = activations + gradients + workspace).
* ``cpu``: each variant runs in a **fresh subprocess** that builds the model, optimiser and data, notes
  its resident set (``VmRSS``), resets the kernel's high-water mark (``/proc/self/clear_refs``), runs the
  warm-up + timed steps and reads the high-water mark ``VmHWM`` (Linux). Reported: that peak resident set
  and its rise over the pre-step resident set ("step": activations, gradients, AdamW states, allocator
  caching; the gradient/optimiser part is identical for both variants, so the difference between the two
  is the attention's activations and workspace). ``tracemalloc`` would miss torch's allocations and
  ``ru_maxrss`` is inherited from the parent across fork + exec, so neither is used.

    python benchmarks/bench_train.py [--device cpu|cuda] [--precision fp32|bf16|fp16|auto] [--rounds 7] [--steps 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import timm  # noqa: E402

import snappix.models  # noqa: E402,F401  (registers the models)
from snappix.engine.optim import use_fused_adamw  # noqa: E402
from snappix.engine.precision import resolve_precision  # noqa: E402
from snappix.masking import build_mask_generator  # noqa: E402

from proc_memory import reset_peak, status_kib  # noqa: E402  (benchmarks/, on sys.path as the script's folder)
from train_floor import optimizer_section, precision_section, profile_section  # noqa: E402

IMPLS = ("sdpa", "explicit")
DEFAULT_PATTERNS = os.path.join(os.path.dirname(REPO), "shared", "data", "snappix_patterns")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="pretrain_coded_videomae_small_patch8_112")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--mask_ratio", type=float, default=0.85)
    p.add_argument("--decoder_mask_ratio", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=1, help="timed training steps per round and variant")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant before the rounds")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["fp32", "bf16", "fp16", "auto"],
                   help="precision of sections (1) and (3); auto: bf16 only where the device computes it natively; "
                        "fp16 (CUDA only): autocast without a loss scaler (timing only)")
    p.add_argument("--no_floor", action="store_true", help="skip sections (2)-(4)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--pattern_dir", default=os.environ.get("SNAPPIX_PATTERN_DIR", DEFAULT_PATTERNS))
    p.add_argument("--no_memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--tiny", action="store_true", help="32 x 32 pixels, 16 frames, decoder depth 1 (dry runs)")
    p.add_argument("--_memory_probe", choices=IMPLS, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build(args, attn_impl: str):
    """Model (same seed -> same weights for both variants), AdamW, and a pool of batches."""
    kwargs = dict(attn_impl=attn_impl)
    if args.tiny:
        kwargs.update(img_size=32, decoder_depth=1)
    if "coded" in args.model:
        if os.path.isfile(os.path.join(args.pattern_dir, "pattern_4.pth")):
            kwargs.update(coded_type="decor_fix", pattern_dir=args.pattern_dir)
        else:
            kwargs.update(coded_type="naive")  # same cost; the pattern does not change the compute
    torch.manual_seed(0)
    model = timm.create_model(args.model, **kwargs).to(args.device).train()
    groups = [{"params": list(model.parameters())}]
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05,
                            fused=True if use_fused_adamw(groups) else None)  # as snappix.engine.optim
    enc_gen = build_mask_generator("tube", model.grid, args.mask_ratio)
    dec_gen = build_mask_generator("run_cell", model.grid, args.decoder_mask_ratio)
    rng = np.random.default_rng(0)
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(2):
        video = torch.rand(args.batch_size, model.in_chans, model.num_frames, model.img_size, model.img_size,
                           generator=g)
        em = torch.from_numpy(np.stack([enc_gen(rng) for _ in range(args.batch_size)]))
        dm = torch.from_numpy(np.stack([dec_gen(rng) for _ in range(args.batch_size)]))
        num_query = int((~dm[0]).sum())
        target = torch.randn(args.batch_size, num_query, model.patch_dim, generator=g)
        batches.append(tuple(t.to(args.device) for t in (video, em, dm, target)))
    return model, opt, batches, kwargs.get("coded_type")


def train_steps(args, model, opt, batches, steps: int, precision: str | None = None) -> None:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision or args.precision)
    for i in range(steps):
        video, em, dm, target = batches[i % len(batches)]
        with torch.autocast(args.device, dtype=dtype, enabled=dtype is not None):
            out = model(video, em, dm)
        loss = (out["pred"].float() - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if args.device == "cuda":
        torch.cuda.synchronize()


def memory_probe(args) -> None:
    """Subprocess body (CPU): resident memory before and peak during the training steps, one JSON line.

    The peak is ``VmHWM`` of /proc/self/status (the high-water mark of this process's own address space;
    ``ru_maxrss`` is not used because Linux carries it over from the parent across fork + exec). After
    the build the mark is reset by writing 5 to /proc/self/clear_refs (Linux >= 4.0), so the peak covers
    the training steps only; if the reset is refused the peak includes the build (reported).
    """
    model, opt, batches, _ = build(args, args._memory_probe)
    reset = reset_peak()
    before = status_kib("VmRSS")
    train_steps(args, model, opt, batches, args.warmup + args.steps)
    peak = status_kib("VmHWM")
    print(json.dumps({"peak_mib": peak / 1024, "step_mib": (peak - before) / 1024, "reset": reset}))


def cpu_memory(args, impl: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory_probe", impl, "--model", args.model,
           "--batch_size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--device", "cpu", "--precision", args.precision, "--threads", str(args.threads),
           "--pattern_dir", args.pattern_dir, "--mask_ratio", str(args.mask_ratio),
           "--decoder_mask_ratio", str(args.decoder_mask_ratio)]
    cmd += ["--tiny"] if args.tiny else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.precision = resolve_precision(args.precision, args.device)
    if args._memory_probe:
        memory_probe(args)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")

    runs = {}
    for impl in IMPLS:
        model, opt, batches, coded_type = build(args, impl)
        train_steps(args, model, opt, batches, args.warmup)
        runs[impl] = (model, opt, batches)
    times = {impl: [] for impl in IMPLS}
    cpu_times = {impl: [] for impl in IMPLS}
    cuda_peak = {impl: 0.0 for impl in IMPLS}
    cuda_step = {impl: 0.0 for impl in IMPLS}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
            if args.device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            t0, c0 = time.perf_counter(), time.process_time()
            train_steps(args, *runs[impl], args.steps)
            times[impl].append(time.perf_counter() - t0)
            cpu_times[impl].append(time.process_time() - c0)
            if args.device == "cuda":
                peak = torch.cuda.max_memory_allocated()
                cuda_peak[impl] = max(cuda_peak[impl], peak / 2**20)
                cuda_step[impl] = max(cuda_step[impl], (peak - base) / 2**20)

    print(f"model {args.model} (coded_type={coded_type}), batch {args.batch_size}, device {args.device}, "
          f"precision {args.precision}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{args.rounds} alternating rounds x {args.steps} timed step(s) (after {args.warmup} warm-up), median:")
    clips, cpu_clips = {}, {}
    for impl in IMPLS:
        med, cpu = statistics.median(times[impl]), statistics.median(cpu_times[impl])
        clips[impl] = args.steps * args.batch_size / med
        cpu_clips[impl] = args.steps * args.batch_size / cpu
        spread = f"{min(times[impl]) / args.steps:.2f}-{max(times[impl]) / args.steps:.2f}"
        print(f"  {impl:9s} {clips[impl]:8.2f} clips/s   ({med / args.steps:.2f} s/step wall, range {spread}; "
              f"{cpu / args.steps:.2f} process-CPU s/step)")
    print(f"  speed-up sdpa / explicit: {clips['sdpa'] / clips['explicit']:.2f}x wall-clock, "
          f"{cpu_clips['sdpa'] / cpu_clips['explicit']:.2f}x process CPU time")

    if not args.no_floor:
        model, opt, batches = runs["sdpa"]
        print()
        precision_section(lambda prec: train_steps(args, model, opt, batches, 1, prec), args.device, args.rounds)
        print()
        profile_section(lambda: train_steps(args, model, opt, batches, 1))
        print()
        optimizer_section(model, max(args.rounds, 3))
    if args.no_memory:
        return
    print()
    if args.device == "cuda":
        print("peak memory (torch.cuda.max_memory_allocated; 'step' = peak minus allocated before the steps):")
        for impl in IMPLS:
            print(f"  {impl:9s} peak {cuda_peak[impl]:9.1f} MiB   step {cuda_step[impl]:9.1f} MiB")
    else:
        del runs
        print("peak memory (fresh subprocess per variant, /proc VmHWM; 'step' = peak resident set during the "
              "training steps minus the resident set before them, incl. gradients + AdamW states, identical for both):")
        mem = {impl: cpu_memory(args, impl) for impl in IMPLS}
        if not all(m["reset"] for m in mem.values()):
            print("  (the high-water mark could not be reset: peaks include the model build)")
        for impl in IMPLS:
            print(f"  {impl:9s} peak {mem[impl]['peak_mib']:9.1f} MiB   step {mem[impl]['step_mib']:9.1f} MiB")
        ratio = mem["explicit"]["step_mib"] / max(mem["sdpa"]["step_mib"], 1e-9)
        print(f"  step-memory ratio explicit / sdpa: {ratio:.2f}x")


if __name__ == "__main__":
    main()
