"""Speed of `mucon separate` (seconds of audio per second) on the built-in corpus's mixtures, then prepare of its output.

Builds the corpus once (default: the small size, cached in $MUCON_CACHE), separates every mixture
with the HPSS separator on --device into a temporary folder, and prepares that folder into a
store to show the two commands fit together.

Usage: python benchmarks/bench_separate.py [--size small] [--device cpu] [--batch-size 4] [--sample-rate 22050]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mucon.audio.separation import separate_folder
from mucon.audio.store import AudioStore
from mucon.audio.store_writer import prepare_store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["small", "default", "full"], default="small")
    parser.add_argument("--corpus", type=Path, help="an existing corpus folder (default: built and cached)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sample-rate", type=int, default=22050, help="rate of the separated files and the store")
    args = parser.parse_args()
    corpus = args.corpus
    if corpus is None:  # imported here: an existing corpus folder needs neither music21 nor the demo's modules
        from mucon.data.corpus import build_corpus
        from mucon.demo import CORPUS_SAMPLE_RATE, cache_dir

        corpus = cache_dir() / f"corpus-{args.size}-{CORPUS_SAMPLE_RATE}-seed0"
        build_corpus(corpus, size=args.size, sample_rate=CORPUS_SAMPLE_RATE, seed=0, progress=False)
    print(f"device: {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}), "
          f"torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory(prefix="mucon-bench-separate-") as scratch:
        scratch = Path(scratch)
        report = separate_folder(corpus, scratch / "separated", args.sample_rate, device=args.device,
                                 batch_size=args.batch_size, progress=False)
        print(report.summary())
        began = time.perf_counter()
        prepared = prepare_store(scratch / "separated", scratch / "store", args.sample_rate, progress=False)
        print(f"prepare: {prepared.summary()} in {time.perf_counter() - began:.1f} s")
        store = AudioStore(scratch / "store")
        print(f"store: {len(store)} items, sources {store.source_names}, layout {store.info['layout']}")


if __name__ == "__main__":
    main()
