"""Fixtures shared across the suite: small synthetic music folders and a prepared store."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CONFIGS = Path(__file__).resolve().parents[1] / "src" / "mucon" / "configs"


def write_tone_folder(folder: Path, n_files: int, sample_rate: int, seconds: float, seed: int = 0) -> Path:
    """Harmonic notes with a random pitch per file, and a metadata.csv with a `genre` label."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rows = []
    for i in range(n_files):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        note = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5)) * np.exp(-t % 0.5)
        audio = 0.3 * note / np.abs(note).max() + 0.01 * rng.standard_normal(t.size)
        name = f"tone{i:03d}.wav"
        sf.write(folder / name, audio.astype(np.float32), sample_rate)
        rows.append({"path": name, "genre": "low" if f0 < 220 else "high"})
    with open(folder / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "genre"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="session")
def tone_store(tmp_path_factory) -> Path:
    """A 16 kHz store of 12 three-second labelled tones, prepared once for the session."""
    from mucon.audio.store import prepare_store

    root = tmp_path_factory.mktemp("tones")
    audio_dir = write_tone_folder(root / "audio", 12, 16000, 3.0)
    prepare_store(audio_dir, root / "store", 16000, progress=False, num_workers=1)
    return root / "store"


def losses_on_a_fixed_batch(method, batch: dict, lr: float, steps: int = 12) -> list[float]:
    """Adam steps of a method on one batch and the loss before each; a method that can learn lowers it."""
    import torch

    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss, _ = method.compute_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
