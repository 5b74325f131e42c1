"""Peak memory of `mucon prepare` on one long file: it must stay flat in the file's length.

Writes a long stereo 44.1 kHz WAV into a temporary folder (default: a 10-minute and a 2-hour file),
then runs the real command under `/usr/bin/time -v` for each and reports its "Maximum resident set
size" (the largest process: with --workers 0 the decoding happens in the command's own process, so
that is the whole job), the time taken, and the growth between the short and the long file.

Usage: python benchmarks/bench_prepare_memory.py [--minutes 10 120] [--workers 0] [--keep]
Needs about 1.3 GB of disk per hour of audio in $TMPDIR (the input, then the store).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

FILE_RATE = 44100
STORE_RATE = 22050


def write_long_file(path: Path, minutes: float) -> None:
    """Stereo chords with noise, written a minute at a time so the generator itself stays small."""
    rng = np.random.default_rng(0)
    t = np.arange(60 * FILE_RATE) / FILE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8, 220.0)) / 4
    with sf.SoundFile(path, "w", FILE_RATE, 2, "PCM_16") as out:
        for _ in range(int(np.ceil(minutes))):
            noise = 0.05 * rng.standard_normal((len(t), 2))
            out.write((0.4 * chord[:, None] * np.array([1.0, 0.8]) + noise).astype(np.float32))


def measure(audio_dir: Path, store_dir: Path, workers: int) -> tuple[float, float, str]:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "mucon.cli", "prepare", str(audio_dir), str(store_dir),
               "--sample-rate", str(STORE_RATE), "--workers", str(workers), "--quiet"]
    began = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - began
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1))
    return peak_kb / 1024, seconds, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 120.0])
    parser.add_argument("--workers", type=int, default=0, help="0: decode in the command's process (measured whole)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mucon-bench-memory-"))
    try:
        rows = []
        for minutes in args.minutes:
            audio_dir = scratch / f"audio-{minutes:g}min"
            audio_dir.mkdir()
            began = time.perf_counter()
            write_long_file(audio_dir / "long.wav", minutes)
            size_mb = (audio_dir / "long.wav").stat().st_size / 2**20
            print(f"wrote {minutes:g} min stereo {FILE_RATE} Hz ({size_mb:.0f} MB) in {time.perf_counter() - began:.0f} s")
            peak_mb, seconds, summary = measure(audio_dir, scratch / f"store-{minutes:g}min", args.workers)
            print(f"  {summary}")
            rows.append((minutes, size_mb, peak_mb, seconds))
            if not args.keep:
                shutil.rmtree(audio_dir)
                shutil.rmtree(scratch / f"store-{minutes:g}min")
        print(f"\n`mucon prepare --sample-rate {STORE_RATE} --workers {args.workers}` on one file (max RSS, /usr/bin/time -v)")
        print(f"{'minutes':>8} {'file MB':>8} {'peak RSS MB':>12} {'seconds':>8}")
        for minutes, size_mb, peak_mb, seconds in rows:
            print(f"{minutes:8g} {size_mb:8.0f} {peak_mb:12.0f} {seconds:8.0f}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
