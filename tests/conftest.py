"""Fixtures shared across the suite: small synthetic music folders and a prepared store."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

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


def sine_tones(samples: int, sample_rate: int = 16000) -> torch.Tensor:
    """Eight int16 sine tones [8, samples], from 110 Hz to 1245 Hz: clips a model can tell apart."""
    t = torch.arange(samples) / sample_rate
    pitches = torch.tensor([110.0, 185.0, 262.0, 392.0, 523.0, 740.0, 880.0, 1245.0])
    return (torch.sin(2 * torch.pi * pitches[:, None] * t) * 0.5 * 32767).to(torch.int16)


def losses_on_a_fixed_batch(method, batch: dict, steps: int = 12, lr: float = 3e-3) -> list[float]:
    """The method's loss at each of `steps` Adam steps on the same batch."""
    optimizer = torch.optim.Adam(method.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss, _ = method.compute_loss(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def recorded_outputs(monkeypatch, owner, name: str) -> list[torch.Tensor]:
    """Wraps ``owner.name`` so that the output of each call, detached, is appended to the list returned."""
    outputs = []
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        output = original(*args, **kwargs)
        outputs.append(output.detach())
        return output

    monkeypatch.setattr(owner, name, recording)
    return outputs


def pretrain_keeping_the_model(config, monkeypatch):
    """Train ``config``: (the method as training left it, in eval mode; the run's last checkpoint)."""
    from mucon.methods import Method
    from mucon.training import pretrain

    trained = []
    monkeypatch.setattr(Method, "on_train_end", lambda method: trained.append(method), raising=False)
    checkpoint = pretrain(config)
    return trained[0].eval(), checkpoint


def assert_loads_back_as_trained(loaded, trained, waveforms: torch.Tensor) -> None:
    """The loaded method holds the trained one's every weight and buffer, and gives its embeddings and
    projections of the same clips."""
    assert type(loaded) is type(trained) and not loaded.training
    expected_state = trained.state_dict()
    assert list(loaded.state_dict()) == list(expected_state)
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(tensor, expected_state[name], rtol=0, atol=0, msg=name)
    with torch.no_grad():
        embeddings = loaded.encoder.embed(waveforms)
        torch.testing.assert_close(embeddings, trained.encoder.embed(waveforms))
        torch.testing.assert_close(loaded.projector(embeddings), trained.projector(embeddings))


def tiny_run_config(preset: str, store: Path, run_dir: Path, steps: int):
    """A few training steps of a CPU preset on a test store, batch 4, no workers."""
    from mucon.config import load_config

    return load_config(preset, [f"data.store={store}", f"run_dir={run_dir}", "data.batch_size=4",
                                "data.num_workers=0", f"trainer.max_steps={steps}", "trainer.progress_bar=false"])


def pretrain_tiny(preset: str, store: Path, run_dir: Path, steps: int) -> Path:
    """The last checkpoint of ``tiny_run_config``'s run."""
    from mucon.training import pretrain

    return pretrain(tiny_run_config(preset, store, run_dir, steps))


@pytest.fixture(autouse=True)
def own_mucon_cache(tmp_path, monkeypatch) -> Path:
    """Each test's own $MUCON_CACHE: the embeddings evaluate and embed share never leak between tests or
    into the user's ~/.cache."""
    monkeypatch.setenv("MUCON_CACHE", str(tmp_path / "mucon-cache"))
    return tmp_path / "mucon-cache"


@pytest.fixture(scope="session")
def tone_store(tmp_path_factory) -> Path:
    """A 16 kHz store of 12 three-second labelled tones, prepared once for the session."""
    from mucon.audio.store_writer import prepare_store

    root = tmp_path_factory.mktemp("tones")
    audio_dir = write_tone_folder(root / "audio", 12, 16000, 3.0)
    prepare_store(audio_dir, root / "store", 16000, progress=False, num_workers=1)
    return root / "store"


@pytest.fixture(scope="session")
def clmr_checkpoint(tmp_path_factory, tone_store) -> Path:
    """A CPU-preset CLMR checkpoint after one step on the tone store, trained once for the session."""
    return pretrain_tiny("clmr-cpu", tone_store, tmp_path_factory.mktemp("clmr") / "run", steps=1)
