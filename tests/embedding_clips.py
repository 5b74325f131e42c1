"""Tiny synthetic clips for the embedding tests (tests/evaluation: windows, embed, embedding_cache, export)."""

import csv

import numpy as np
import soundfile as sf
import torch

from mucon.encoders import build_encoder

RATE = 16000


def small_encoder(**options):
    """A seeded small CNN over one-second windows at RATE, in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE, **options).eval()


def tone(seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_clip_folder(root):
    """Five good files (one in a subfolder, one at 22.05 kHz, one shorter than a window) and a bad one."""
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", tone(2.0, 220), RATE)
    sf.write(root / "b.flac", tone(1.3, 330), RATE)
    sf.write(root / "sub" / "c.wav", tone(0.4, 440), RATE)
    sf.write(root / "d.wav", tone(1.0, 550), RATE)
    sf.write(root / "e.wav", tone(1.5, 660), 22050)
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (root / "notes.txt").write_text("not audio: ignored")
    return root


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
