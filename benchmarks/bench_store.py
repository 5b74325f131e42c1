"""Why the store exists, in three numbers: crop throughput vs decoding, stems, and reader memory vs store size.

1. Random 59049-sample crops at 22050 Hz (CLMR's input) read from a prepared store, against the
   same crops decoded from the original 44.1 kHz stereo flac/mp3 files, both by seeking to the
   crop (the fastest decoding loader) and by decoding the whole file (what naive loaders do).
2. Crops of a multitrack store (a MUSDB18-HQ-like folder): the mixture alone, against the mixture
   plus its 4 sources at the same window with their activity (what MSCOL's batches read).
3. Private memory (RssAnon from /proc) of a fresh process that opens a store and reads crops,
   for a store of N and of 10N items: it must not grow with the number of items.

Usage: python benchmarks/bench_store.py [--files 200] [--crops 200] [--tracks 40] [--items 100000]
Files are rendered from a few distinct 30 s signals and copied (encoding mp3 costs seconds per
file); every file is still decoded independently. All reads come from the page cache.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from mucon.audio import store_writer
from mucon.audio.io import load_audio
from mucon.audio.store import AudioStore
from mucon.audio.store_format import to_float
from mucon.audio.store_writer import prepare_store

STORE_RATE = 22050
FILE_RATE = 44100
CROP = 59049
BATCH = 32
DISTINCT_RENDERS = 2  # per format


def render(seconds: float, seed: int) -> np.ndarray:
    """Stereo chords with a beat and noise, so codecs do real work."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FILE_RATE)) / FILE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(80, 2000, 6)) / 6
    beat = np.exp(-(t % 0.5) * 12)
    left = 0.5 * chord * beat + 0.03 * rng.standard_normal(len(t))
    right = 0.5 * np.roll(chord, 300) * beat + 0.03 * rng.standard_normal(len(t))
    return np.stack([left, right], axis=1).astype(np.float32)


def synthesize_corpus(folder: Path, n_files: int, seconds: float) -> None:
    folder.mkdir(parents=True)
    renders = []
    for k in range(DISTINCT_RENDERS):
        for extension in ("flac", "mp3"):
            path = folder / f"render-{k}.{extension}"
            sf.write(path, render(seconds, seed=k), FILE_RATE)
            renders.append(path)
    for i in range(n_files):
        source = renders[i % len(renders)]
        shutil.copyfile(source, folder / f"track-{i:04d}{source.suffix}")
    for path in renders:
        path.unlink()


def synthesize_multitrack(folder: Path, n_tracks: int, seconds: float) -> None:
    """A MUSDB18-HQ-like folder: train/<track>/{mixture,vocals,drums,bass,other}.wav, mixture = sum of stems."""
    for i in range(n_tracks):
        track = folder / "train" / f"track-{i:03d}"
        track.mkdir(parents=True)
        stems = [0.25 * render(seconds, seed=4 * i + k) for k in range(4)]
        for name, stem in zip(("vocals", "drums", "bass", "other"), stems):
            sf.write(track / f"{name}.wav", stem, FILE_RATE)
        sf.write(track / "mixture.wav", np.sum(stems, axis=0), FILE_RATE)


def time_multitrack(store: AudioStore, indices: np.ndarray, starts: np.ndarray, sources: bool) -> float:
    """Crops one by one as a dataset's __getitem__ reads them: the mixture, and with ``sources`` all stems too."""
    began = time.perf_counter()
    for i, start in zip(indices, starts):
        store.read(i, start, CROP)
        if sources:
            store.read_sources(i, start, CROP, store.source_names)
            store.source_activity(i, start, CROP, store.source_names)
    return time.perf_counter() - began


def time_store(store: AudioStore, indices: np.ndarray, starts: np.ndarray, as_float: bool) -> float:
    """Batches of 32 as a DataLoader worker would read them; int16 is what it would ship to the GPU."""
    began = time.perf_counter()
    for first in range(0, len(indices), BATCH):
        crops = store.read_crops(indices[first : first + BATCH], starts[first : first + BATCH], CROP)
        if as_float:
            to_float(crops)
    return time.perf_counter() - began


def time_seek_decode(audio_dir: Path, store: AudioStore, indices: np.ndarray, starts: np.ndarray) -> float:
    """Decode only the crop's span at the file rate (plus resampler margin), then resample."""
    span = math.ceil(CROP * FILE_RATE / STORE_RATE) + 64
    began = time.perf_counter()
    for i, start in zip(indices, starts):
        with sf.SoundFile(audio_dir / store.path(int(i))) as audio_file:
            audio_file.seek(int(start) * FILE_RATE // STORE_RATE)
            frames = audio_file.read(span, dtype="float32", always_2d=True).mean(axis=1)
        crop = soxr.resample(frames, audio_file.samplerate, STORE_RATE, quality="HQ")[:CROP]
        assert len(crop) == CROP
    return time.perf_counter() - began


def time_full_decode(audio_dir: Path, store: AudioStore, indices: np.ndarray, starts: np.ndarray) -> float:
    began = time.perf_counter()
    for i, start in zip(indices, starts):
        load_audio(audio_dir / store.path(int(i)), STORE_RATE)[int(start) : int(start) + CROP]
    return time.perf_counter() - began


def replicate_store(source: Path, target: Path, n_items: int) -> None:
    """A store of ``n_items`` whose items reuse the source's audio: same reads, bigger index."""
    target.mkdir(parents=True)
    for shard in source.glob("shard-*.i16"):
        (target / shard.name).symlink_to(shard)
    original = AudioStore(source)
    which = np.arange(n_items) % len(original)
    names = b"".join(b"item-%08d.flac" % i for i in range(n_items))
    name_offsets = np.arange(n_items + 1, dtype=np.int64) * len(b"item-00000000.flac")
    store_writer._write_index(
        target, original._shard[which], original._offset[which], original.lengths[which], original.has_source[which],
        np.frombuffer(names, np.uint8), name_offsets,
    )
    info = {**original.info, "num_items": n_items}
    (target / "store.json").write_text(json.dumps(info))


def proc_status_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def measure_reader(store_dir: str, n_batches: int) -> None:
    """Run in a fresh process: memory before opening, after opening, after reading crops."""
    before = proc_status_mb()
    began = time.perf_counter()
    store = AudioStore(store_dir)
    open_ms = (time.perf_counter() - began) * 1000
    opened = proc_status_mb()
    rng = np.random.default_rng(0)
    for _ in range(n_batches):
        indices = rng.integers(0, len(store), BATCH)
        to_float(store.read_crops(indices, store.random_starts(indices, CROP, rng), CROP))
        store.path(int(indices[0]))
    after = proc_status_mb()
    print(json.dumps({"items": len(store), "open_ms": open_ms, "before": before, "opened": opened, "after": after}))


def reader_memory(store_dir: Path, n_batches: int) -> dict:
    command = [sys.executable, __file__, "--measure-reader", str(store_dir), "--batches", str(n_batches)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--crops", type=int, default=120, help="random crops read by each method")
    parser.add_argument("--tracks", type=int, default=40, help="tracks of the multitrack store")
    parser.add_argument("--items", type=int, default=100_000, help="N for the memory comparison (N vs 10N)")
    parser.add_argument("--batches", type=int, default=200, help="batches of 32 crops read in the memory test")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--measure-reader", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_reader:
        measure_reader(args.measure_reader, args.batches)
        return

    with tempfile.TemporaryDirectory(prefix="mucon-bench-") as scratch:
        scratch = Path(scratch)
        began = time.perf_counter()
        synthesize_corpus(scratch / "audio", args.files, args.seconds)
        print(f"corpus: {args.files} x {args.seconds:.0f} s stereo {FILE_RATE} Hz flac/mp3, written in {time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        report = prepare_store(scratch / "audio", scratch / "store", STORE_RATE, num_workers=args.workers, progress=False)
        print(f"prepare: {report.summary()} in {time.perf_counter() - began:.1f} s")

        store = AudioStore(scratch / "store")
        rng = np.random.default_rng(0)
        indices = rng.integers(0, len(store), args.crops)
        starts = store.random_starts(indices, CROP, rng)
        timings = {
            "store, int16 crops (first read)": time_store(store, indices, starts, as_float=False),
            "store, int16 -> float32": time_store(store, indices, starts, as_float=True),
            "decode, seek to crop + resample": time_seek_decode(scratch / "audio", store, indices, starts),
            "decode whole file + resample": time_full_decode(scratch / "audio", store, indices, starts),
        }
        store_rate = args.crops / timings["store, int16 -> float32"]
        print(f"\n{args.crops} random crops of {CROP} samples at {STORE_RATE} Hz, one process")
        print(f"{'method':34} {'crops/s':>10} {'float store vs it':>18}")
        for method, seconds in timings.items():
            print(f"{method:34} {args.crops / seconds:10.0f} {store_rate / (args.crops / seconds):17.1f}x")

        synthesize_multitrack(scratch / "multitrack", args.tracks, args.seconds)
        report = prepare_store(scratch / "multitrack", scratch / "multitrack-store", STORE_RATE, num_workers=args.workers,
                               progress=False)
        print(f"\nmultitrack prepare: {report.summary()}")
        multitrack = AudioStore(scratch / "multitrack-store")
        indices = rng.integers(0, len(multitrack), args.crops)
        starts = multitrack.random_starts(indices, CROP, rng)
        time_multitrack(multitrack, indices, starts, sources=True)  # first read: page cache warm for both
        mixture_only = args.crops / time_multitrack(multitrack, indices, starts, sources=False)
        with_sources = args.crops / time_multitrack(multitrack, indices, starts, sources=True)
        print(f"{args.crops} random crops of {CROP} samples, one process, one crop at a time")
        print(f"{'read':44} {'crops/s':>10} {'MB/s':>8}")
        for name, rate, tracks in (("mixture only", mixture_only, 1),
                                   ("mixture + 4 sources + their activity", with_sources, 5)):
            print(f"{name:44} {rate:10.0f} {rate * tracks * CROP * 2 / 2**20:8.0f}")

        print(f"\nreader process memory, {args.batches} batches of {BATCH} random crops (MB, from /proc/self/status)")
        print(f"{'items':>9} {'index on disk':>14} {'open ms':>8} {'RssAnon open':>13} {'RssAnon after':>14} {'RssFile after':>14}")
        for n_items in (args.items, 10 * args.items):
            store_dir = scratch / f"store-{n_items}"
            replicate_store(scratch / "store", store_dir, n_items)
            index_mb = sum(path.stat().st_size for path in store_dir.glob("*.npy")) / 2**20
            memory = reader_memory(store_dir, args.batches)
            base = memory["before"]["RssAnon"]
            print(
                f"{memory['items']:9d} {index_mb:14.1f} {memory['open_ms']:8.1f} "
                f"{memory['opened']['RssAnon'] - base:+13.1f} {memory['after']['RssAnon'] - base:+14.1f} "
                f"{memory['after']['RssFile']:14.1f}"
            )
        print("RssAnon: private memory grown since before opening the store (the crop buffers, not the index).")
        print("RssFile: shared, reclaimable page cache of shard and index pages the reads touched.")


if __name__ == "__main__":
    main()
