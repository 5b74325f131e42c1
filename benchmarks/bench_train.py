"""Training throughput of a method preset on this machine: samples/s, achieved FLOP/s against the
machine's measured matmul peak, and peak memory. Each preset runs in its own process so that peak
memory (max RSS on CPU, max allocated on CUDA) is its own. A step runs at the preset's precision
(``trainer.precision``; ``auto`` resolves as in training), or at ``--precision``.

    python benchmarks/bench_train.py                      # every paper and CPU preset
    python benchmarks/bench_train.py clmr-cpu --steps 10 --precision 32-true
    python benchmarks/bench_train.py clmr-cpu --profile   # the profiler's top operations of one step
    python benchmarks/bench_train.py clmr-cpu --compile on   # only the compiled step (default: both, eager first)

Each preset runs eagerly and with its encoder's network compiled (``trainer.compile``); "first step" is the
wall time of the first step, which for a compiled run holds the compile (from an empty inductor cache only
if the cache folder is empty: ``TORCHINDUCTOR_CACHE_DIR`` picks it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_PRESETS = ["clmr", "clmr-cpu", "semisupcon", "semisupcon-cpu"]


def matmul_peak_flops(device: torch.device, dtype: torch.dtype = torch.float32, size: int = 1024,
                      seconds: float = 0.5) -> float:
    """The machine's matmul FLOP/s at ``dtype``: the ceiling a step at that precision is measured against.
    Timed for about ``seconds`` however fast the machine is: without bf16 instructions a CPU emulates bf16
    matmuls hundreds of times slower, and a fixed count of them would take minutes."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    repeats, start = 0, time.perf_counter()
    while repeats == 0 or time.perf_counter() - start < seconds:
        a @ b
        repeats += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def counted_flops(step) -> int:
    """The FLOPs of one call of ``step``, as torch.utils.flop_counter counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def measure_preset(config_path: str, steps: int, device: torch.device, precision: str | None = None,
                   profile: bool = False, compiled: bool = False) -> dict:
    from mucon.config import load_config
    from mucon.step_timing import synthetic_training_step

    config = load_config(config_path, [f"trainer.compile={str(compiled).lower()}"])
    method, step, precision, compiled = synthetic_training_step(config, device, precision)
    batch_size = config.data.batch_size

    start = time.perf_counter()
    step()  # a compiled network compiles here
    first_step = time.perf_counter() - start
    if compiled:  # counted eagerly: the counter does not see inside inductor's kernels, and the FLOPs are the same
        eager = load_config(config_path, ["trainer.compile=false"])
        flops_per_step = counted_flops(synthetic_training_step(eager, device, precision)[1])
    else:
        flops_per_step = counted_flops(step)
    step()
    if profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            step()
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    peak_memory = (
        torch.cuda.max_memory_allocated() if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "preset": Path(config_path).stem,
        "precision": precision,
        "compiled": compiled,
        "first_step_seconds": first_step,
        "encoder": config.encoder.name,
        "batch": batch_size,
        "crop_samples": method.data_request.crop_samples,
        "seconds_per_step": seconds,
        "samples_per_second": batch_size / seconds,
        "flops_per_step": flops_per_step,
        "achieved_flops": flops_per_step / seconds,
        "peak_memory_bytes": peak_memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="*", default=DEFAULT_PRESETS, help="preset names or config files")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", help="override the preset's trainer.precision (32-true, bf16-mixed, auto)")
    parser.add_argument("--profile", action="store_true", help="print the torch.profiler table of one step")
    parser.add_argument("--compile", choices=["off", "on", "both"], default="both",
                        help="time the eager step, the compiled one, or both (default)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.child:
        print(json.dumps(measure_preset(args.presets[0], args.steps, device, args.precision, args.profile,
                                        compiled=args.compile == "on")))
        return

    peaks = {"32-true": matmul_peak_flops(device), "bf16-mixed": matmul_peak_flops(device, torch.bfloat16)}
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, matmul peak: float32 "
          f"{peaks['32-true'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16-mixed'] / 1e9:.1f} GFLOP/s")
    header = f"{'preset':<18}{'encoder':<16}{'precision':>11}{'compiled':>9}{'first step':>11}{'batch':>6}{'crop':>8}{'s/step':>9}{'samples/s':>11}{'GFLOP/step':>12}{'GFLOP/s':>9}{'of peak':>9}{'peak mem':>10}"
    print(header)
    print("-" * len(header))
    modes = {"off": ["off"], "on": ["on"], "both": ["off", "on"]}[args.compile]
    for preset, mode in ((preset, mode) for preset in args.presets for mode in modes):
        out = subprocess.run(
            [sys.executable, __file__, str(preset), "--steps", str(args.steps), "--device", args.device, "--child",
             "--compile", mode, *(["--precision", args.precision] if args.precision else []),
             *(["--profile"] if args.profile else [])],
            stdout=subprocess.PIPE, text=True, check=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{r['preset']:<18}{r['encoder']:<16}{r['precision']:>11}{'yes' if r['compiled'] else 'no':>9}"
            f"{r['first_step_seconds']:>10.1f}s{r['batch']:>6}{r['crop_samples']:>8}{r['seconds_per_step']:>9.3f}"
            f"{r['samples_per_second']:>11.1f}{r['flops_per_step'] / 1e9:>12.1f}{r['achieved_flops'] / 1e9:>9.1f}"
            f"{r['achieved_flops'] / peaks.get(r['precision'], peaks['32-true']):>9.1%}"
            f"{r['peak_memory_bytes'] / 2**20:>8.0f}MiB"
        )
    print("FLOPs are those torch.utils.flop_counter counts (matmuls and convolutions of forward and backward);"
          " the augmentation chain's FFTs are timed but not counted. 'of peak': of the matmul peak at the step's"
          " precision.")


if __name__ == "__main__":
    main()
