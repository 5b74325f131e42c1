"""The training data path end to end: clips per second through the data module, and its memory.

1. Clips per second served by ``ClipDataset`` + ``PoolBatchSampler`` through a DataLoader, for the
   requests the methods make: CLMR and PEMR (2 crops anywhere in the item; 1 crop: the ablation),
   SemiSupCon (2 adjacent chunks, labels, b_s = 0.5), COLA (2 crops of a 4 s segment, the item's
   level) and MSCOL (a mixture crop, one source's crop, presence, levels), next
   to each other on one multitrack store.
2. Loader memory (main process + workers, RSS from /proc) for a store of N and 10N items with a
   labels table: the pools, the permutations and the label rows are all that grows with N.

Usage: python benchmarks/bench_loader.py [--tracks 40] [--items 10000] [--batches 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).parent))
from bench_store import STORE_RATE, replicate_store, synthesize_multitrack  # noqa: E402

from mucon.audio.store_writer import prepare_store  # noqa: E402
from mucon.config import DataConfig  # noqa: E402
from mucon.data.datamodule import ClipDataset, StoreDataModule  # noqa: E402
from mucon.data.request import DataRequest  # noqa: E402

SOURCES = ("vocals", "drums", "bass", "other")
SECOND = STORE_RATE


def requests() -> dict[str, DataRequest]:
    return {
        "clmr: 2 crops of 59049 anywhere": DataRequest(59049, views=2, layout="anywhere"),
        "clmr ablation: 1 crop of 59049": DataRequest(59049),
        "semisupcon: 2 chunks of 59535, labels": DataRequest(59535, views=2, labels=True, labelled_share=0.5),
        "cola: 2 crops of 1 s in 4 s, level": DataRequest(SECOND, views=2, layout="independent",
                                                          segment_samples=4 * SECOND, item_level=True),
        "mscol: 1 crop + 1 source, presence, levels": DataRequest(
            SECOND, layout="independent", segment_samples=4 * SECOND, sources=SOURCES, source_per_batch=True,
            present_only_probability=0.5, item_level=True),
        "all 4 sources, presence": DataRequest(SECOND, layout="independent", segment_samples=4 * SECOND,
                                               sources=SOURCES),
    }


def write_labels(store_dir: Path, n_items: int) -> None:
    """A labels.csv as `mucon prepare` writes one: tags on every other item, a labelled flag."""
    tags = ["rock;guitar", "jazz;piano", "pop", "classical;strings;piano"]
    with open(store_dir / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "tags", "labelled"])
        for i in range(n_items):
            writer.writerow([f"item-{i:08d}.flac", tags[i % 4] if i % 2 == 0 else "", int(i % 2 == 0)])
    info = json.loads((store_dir / "store.json").read_text())
    (store_dir / "store.json").write_text(json.dumps({**info, "has_labels": True}))


def loader(store_dir: Path, request: DataRequest, batch_size: int, workers: int):
    from torch.utils.data import DataLoader

    config = DataConfig(store=str(store_dir), sample_rate=STORE_RATE, batch_size=batch_size, num_workers=workers,
                        label_column="tags", labelled_column="labelled")
    module = StoreDataModule(config, seed=0)
    return DataLoader(ClipDataset(module.store, request, module.label_rows),
                      batch_sampler=module.batch_sampler(request), num_workers=workers)


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def measure_memory(store_dir: str, batches: int, workers: int) -> None:
    """Run in a fresh process: RSS of this process and its workers while a SemiSupCon-like loader runs."""
    import os

    request = requests()["semisupcon: 2 chunks of 59535, labels"]
    began = rss_mb([os.getpid()])
    data = iter(loader(Path(store_dir), request, 32, workers))
    for _ in range(batches):
        next(data)
    children = [int(pid) for pid in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
    print(json.dumps({"before": began, "main": rss_mb([os.getpid()]), "workers": rss_mb(children)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--items", type=int, default=10_000, help="N for the memory comparison (N vs 10N)")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--measure-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_memory:
        measure_memory(args.measure_memory, args.batches, args.workers)
        return

    with tempfile.TemporaryDirectory(prefix="mucon-bench-loader-") as scratch:
        scratch = Path(scratch)
        synthesize_multitrack(scratch / "multitrack", args.tracks, args.seconds)
        print(prepare_store(scratch / "multitrack", scratch / "store", STORE_RATE, progress=False).summary())
        for n_items in (args.items, 10 * args.items):  # the tracks' audio under N and 10N index entries
            replicate_store(scratch / "store", scratch / f"store-{n_items}", n_items)
            write_labels(scratch / f"store-{n_items}", n_items)
        store_dir = scratch / f"store-{args.items}"

        print(f"\nclips per second through a DataLoader ({args.workers} workers, batches of {args.batch_size})")
        print(f"{'request':40} {'clips/s':>9} {'MB/s int16':>11}")
        for name, request in requests().items():
            data = iter(loader(store_dir, request, args.batch_size, args.workers))
            next(data)  # workers started, page cache warm
            began = time.perf_counter()
            for _ in range(args.batches):
                batch = next(data)
            clips = args.batches * args.batch_size / (time.perf_counter() - began)
            samples = sum(batch[key][0].numel() for key in ("audio", "sources") if key in batch)
            print(f"{name:40} {clips:9.0f} {clips * samples * 2 / 2**20:11.0f}")

        print(f"\nloader memory, {args.batches} batches of 32 SemiSupCon clips, {args.workers} workers (MB RSS)")
        print(f"{'items':>9} {'main before':>12} {'main after':>11} {'workers':>8}")
        for n_items in (args.items, 10 * args.items):
            replicated = scratch / f"store-{n_items}"
            command = [sys.executable, __file__, "--measure-memory", str(replicated), "--batches", str(args.batches),
                       "--workers", str(args.workers)]
            memory = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            print(f"{n_items:9d} {memory['before']:12.1f} {memory['main']:11.1f} {memory['workers']:8.1f}")


if __name__ == "__main__":
    main()
