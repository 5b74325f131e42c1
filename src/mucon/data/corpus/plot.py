"""A picture of a version: log-mel spectrograms of the mixture and of each stem, stacked on one
time axis, so one can see at a glance that the stems are parts of the mixture and sound like music."""

from __future__ import annotations

import csv
from pathlib import Path

import soundfile as sf
import torch

from mucon.audio.frontend import LogMelSpectrogram

from .versions import SOURCES


def plot_stems(corpus_dir: str | Path, version_id: str, out_png: str | Path) -> Path:
    """Write a PNG of the mixture of ``version_id`` over each of its stems, titled with its labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corpus_dir = Path(corpus_dir)
    with open(corpus_dir / "metadata.csv", newline="") as f:
        row = next((r for r in csv.DictReader(f) if r["version"] == version_id), None)
    if row is None:
        raise KeyError(f"{version_id} is not in {corpus_dir / 'metadata.csv'}")
    tracks = [("mixture", row["path"])] + [(s, row[f"stem_{s}"]) for s in SOURCES if row[f"stem_{s}"]]
    audio = [sf.read(corpus_dir / p, dtype="float32") for _, p in tracks]
    sr = audio[0][1]
    frontend = LogMelSpectrogram(sample_rate=sr, n_fft=2048, hop_length=256, n_mels=128, f_min=30.0, scale="db")
    with torch.no_grad():
        specs = [frontend(torch.from_numpy(x)).numpy() for x, _ in audio]
    top = max(s.max() for s in specs)
    fig, axes = plt.subplots(len(tracks), 1, figsize=(11, 1.9 * len(tracks) + 0.8), sharex=True, squeeze=False)
    for ax, (name, _), spec in zip(axes[:, 0], tracks, specs):
        dur = spec.shape[1] * 256 / sr
        ax.imshow(spec, origin="lower", aspect="auto", vmin=top - 80, vmax=top, cmap="magma",
                  extent=(0, dur, 0, spec.shape[0]))
        ax.set_ylabel(f"{name}\nmel bin")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{version_id}: {row['composer']}, {row['key']}, {row['tempo']} bpm, transpose {row['transpose']}, "
                 f"{row['soundfont']}\nfamilies: {row['families']}", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
