"""Embeddings per second of each CPU preset's encoder (random weights, float32, crops of its input length):
eager PyTorch, the torch.export program, and ONNX through onnxruntime with the FFT and the conv-STFT front end.

    python benchmarks/bench_export.py                       # every CPU preset, batch 8, 2 threads
    python benchmarks/bench_export.py --presets clmr pemr cola  # the papers' encoders (random weights)
    python benchmarks/bench_export.py --presets cola-cpu --batch-size 32 --threads 4

Each figure is the best of ``--repeats`` timed runs of ``--batches`` batches, after one warm-up batch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import onnxruntime
import torch

from mucon.config import load_config
from mucon.encoders import build_run_encoder
from mucon.export import EmbeddingModel, export_onnx, export_program, input_feed, program_metadata, with_stft

COLUMNS = ("eager", "torch.export", "onnx fft", "onnx conv")
CONFIGS = Path(__file__).resolve().parents[1] / "src" / "mucon" / "configs"


def embeddings_per_second(embed, waveform: torch.Tensor, batches: int, repeats: int) -> float:
    embed(waveform)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            embed(waveform)
        best = min(best, time.perf_counter() - start)
    return batches * waveform.shape[0] / best


def onnx_session(encoder, stft: str, folder: Path, threads: int):
    """(an onnxruntime session of ``encoder`` with the ``stft`` front end, the file's metadata)."""
    encoder = with_stft(encoder, stft)
    program = export_program(encoder)
    path, metadata = folder / f"{stft}.onnx", program_metadata(program, encoder, "0" * 64, stft)
    export_onnx(program, path, metadata)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]), metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=sorted(path.stem for path in CONFIGS.glob("*-cpu.yaml")))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"embeddings/s, float32, batch {args.batch_size}, {args.threads} threads")
    print(f"{'preset':18} {'samples':>8}" + "".join(f"{name:>13}" for name in COLUMNS))
    with tempfile.TemporaryDirectory() as folder, torch.no_grad():
        for preset in args.presets:
            torch.manual_seed(0)
            encoder = build_run_encoder(load_config(preset, [])).eval()
            waveform = 0.3 * torch.randn(args.batch_size, encoder.input_samples)
            exported = export_program(encoder)
            metadata = program_metadata(exported, encoder, "0" * 64, "fft")
            inputs = list(input_feed(metadata, waveform).values())  # a COLA/MSCOL clip at its own level
            program = exported.module()
            rates = [embeddings_per_second(lambda _: EmbeddingModel(encoder)(*inputs), waveform, args.batches,
                                           args.repeats),
                     embeddings_per_second(lambda _: program(*inputs), waveform, args.batches, args.repeats)]
            for stft in ("fft", "conv"):
                if stft == "conv" and not hasattr(getattr(encoder, "frontend", None), "use_stft"):
                    rates.append(None)  # a raw-waveform encoder (SampleCNN): no spectrum to compute
                    continue
                session, metadata = onnx_session(encoder, stft, Path(folder), args.threads)
                feed = {name: value.numpy() for name, value in input_feed(metadata, waveform).items()}
                rates.append(embeddings_per_second(lambda _, session=session: session.run(None, feed), waveform,
                                                   args.batches, args.repeats))
            print(f"{preset:18} {encoder.input_samples:>8} "
                  + "".join(f"{'-' if rate is None else f'{rate:.0f}':>13}" for rate in rates), flush=True)


if __name__ == "__main__":
    main()
