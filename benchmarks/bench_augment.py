"""Throughput of the augmentation chains: one batched call versus the same chain clip by clip.

The releases of CLMR and SemiSupCon augmented one clip at a time; mucon augments the whole batch
on the model's device. This prints augmented clips per second both ways, for the CLMR chain
(batch 48 of 59049 samples at 22050 Hz, PEMR's training batch) and the SemiSupCon chain, and a
per-step breakdown of the CLMR chain with every step forced on.

    python benchmarks/bench_augment.py [--device cuda] [--batch 48] [--seconds 6] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch

from mucon.audio.chains import CLMR_CROP_SAMPLES, CLMR_SAMPLE_RATE, clmr_chain, semisupcon_chain


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_for(run, device: torch.device) -> float:
    synchronise(device)
    start = time.perf_counter()
    run()
    synchronise(device)
    return time.perf_counter() - start


def compare(name: str, chain: torch.nn.Module, clips: torch.Tensor, min_seconds: float) -> None:
    """Clips per second batched and clip by clip, timed in alternation with the best of each kept,
    so that load from other processes hits both ways alike and is filtered out. The generator is
    re-seeded for every run, so every run of one way draws the same work."""
    device = clips.device
    generator = torch.Generator(device=device)

    def batched():
        generator.manual_seed(0)
        chain(clips, generator)

    def one_at_a_time():
        generator.manual_seed(0)
        for row in clips.split(1):
            chain(row, generator)

    batched(), one_at_a_time()  # warm-up: caches, allocator, FFT plans
    fast = slow = float("inf")
    spent = 0.0
    while spent < min_seconds:
        batched_seconds, looped_seconds = seconds_for(batched, device), seconds_for(one_at_a_time, device)
        fast, slow = min(fast, batched_seconds), min(slow, looped_seconds)
        spent += batched_seconds + looped_seconds
    n = clips.shape[0]
    print(
        f"{name:<28} batched {n / fast:8.1f} clips/s   one at a time {n / slow:8.1f} clips/s"
        f"   speed-up {slow / fast:5.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=6.0, help="minimum timing per comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print(f"batch {args.batch} x {CLMR_CROP_SAMPLES} samples at {CLMR_SAMPLE_RATE} Hz\n")
    noise = torch.randn(args.batch, CLMR_CROP_SAMPLES, generator=torch.Generator().manual_seed(1))
    clips = (0.1 * noise).to(device)

    compare("CLMR chain", clmr_chain(CLMR_SAMPLE_RATE), clips, args.seconds)
    without_pitch = clmr_chain(CLMR_SAMPLE_RATE, pitch_shift=False)
    compare("CLMR chain, no pitch shift", without_pitch, clips, args.seconds)
    compare("SemiSupCon chain (s = 1)", semisupcon_chain(CLMR_SAMPLE_RATE, 1.0), clips, args.seconds)

    print("\nCLMR steps, each forced on (p = 1):")
    for step in clmr_chain(CLMR_SAMPLE_RATE).augmentations:
        always = copy.deepcopy(step)
        always.p = 1.0
        compare(f"  {type(step).__name__}", always, clips, args.seconds / 2)


if __name__ == "__main__":
    main()
