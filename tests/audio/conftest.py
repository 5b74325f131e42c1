"""Synthetic audio folders: every format, rate and channel count mucon meets, plus every kind of bad file;
the store they prepare to, shared by the writer's and the reader's tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mucon.audio.store_writer import PrepareReport, prepare_store

# name -> (sample rate, channels, seconds, soundfile format options); names sort in this order.
GOOD_FILES = {
    "a_16k_mono.wav": (16000, 1, 1.5, {}),
    "b_22k_stereo.flac": (22050, 2, 1.3, {}),
    "c_44k_mono.ogg": (44100, 1, 1.2, {"format": "OGG", "subtype": "VORBIS"}),
    "d_48k_stereo.opus": (48000, 2, 1.4, {"format": "OGG", "subtype": "OPUS"}),
    "e_44k_stereo.mp3": (44100, 2, 1.6, {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
    "nested/f_48k_mono.AIFF": (48000, 1, 2.0, {"format": "AIFF", "subtype": "PCM_16"}),
}
# name -> the reason prepare_store must give for skipping it.
BAD_FILES = {
    "bad_corrupt.flac": "corrupt",
    "bad_empty.wav": "empty",
    "bad_short.wav": "too short",
    "bad_silent.wav": "silent",
    "bad_text.wav": "not audio",
}
IGNORED_FILES = ("notes.txt", "nested/cover.jpg")
SAMPLE_RATE = 16000  # of the stores the tests prepare


def music_like(sample_rate: int, channels: int, seconds: float, seed: int) -> np.ndarray:
    """A few decaying partials plus noise: broadband enough to exercise codecs and resamplers."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) / (k + 1) for k, f in enumerate(rng.uniform(100, 3000, 4)))
    signal = 0.25 * tones * np.exp(-t % 0.5) + 0.02 * rng.standard_normal(len(t))
    return np.stack([signal * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)


def write_good_file(path: Path, sample_rate: int, channels: int, seconds: float, options: dict, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, music_like(sample_rate, channels, seconds, seed), sample_rate, **options)


def write_truncated_mp3(path: Path, sample_rate: int, seconds: float) -> Path:
    """An MP3 cut off at half its bytes, as an interrupted download leaves it: the header still says ``seconds``."""
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile writes no MP3")
    write_good_file(path, sample_rate, 1, seconds, {"format": "MP3", "subtype": "MPEG_LAYER_III"}, seed=5)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def write_bad_files(folder: Path) -> None:
    """One file per way an input can be unusable; each still carries an audio extension."""
    rng = np.random.default_rng(0)
    valid = folder / "valid.flac"
    sf.write(valid, music_like(22050, 1, 1.5, 99), 22050)
    header_then_garbage = valid.read_bytes()[:200] + rng.bytes(valid.stat().st_size - 200)
    valid.unlink()
    (folder / "bad_corrupt.flac").write_bytes(header_then_garbage)
    (folder / "bad_empty.wav").write_bytes(b"")
    sf.write(folder / "bad_short.wav", music_like(16000, 1, 0.05, 7), 16000)
    sf.write(folder / "bad_silent.wav", np.zeros(24000, np.float32), 16000)
    (folder / "bad_text.wav").write_text("this is not audio\n" * 50)


def write_ignored_files(folder: Path) -> None:
    for name in IGNORED_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("not an audio extension")


def build_mixed_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, (sample_rate, channels, seconds, options)) in enumerate(GOOD_FILES.items()):
        write_good_file(folder / name, sample_rate, channels, seconds, options, seed)
    write_bad_files(folder)
    write_ignored_files(folder)
    return folder


@pytest.fixture(scope="session")
def mixed_audio_dir(tmp_path_factory) -> Path:
    """Good files of every format next to bad ones; shared read-only by all tests."""
    return build_mixed_folder(tmp_path_factory.mktemp("mixed_audio"))


def prepare(audio_dir, store_dir, **options) -> PrepareReport:
    return prepare_store(audio_dir, store_dir, SAMPLE_RATE, num_workers=0, progress=False, **options)


@pytest.fixture(scope="session")
def reference_store(mixed_audio_dir, tmp_path_factory) -> Path:
    """An uninterrupted run, small shards so items spread over several: what every other run must equal;
    read-only (a test that damages it works on a copy)."""
    store_dir = tmp_path_factory.mktemp("reference") / "store"
    prepare(mixed_audio_dir, store_dir, shard_bytes=100_000)
    return store_dir


@pytest.fixture
def make_unreadable(monkeypatch):
    """Call with a folder name: listing that folder then fails as without read permission (tests run as root)."""

    def refuse(name: str) -> None:
        scandir = os.scandir

        def scandir_refusing(path):
            if os.path.basename(os.fspath(path)) == name:
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return scandir(path)

        monkeypatch.setattr(os, "scandir", scandir_refusing)

    return refuse
