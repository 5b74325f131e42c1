"""Tiny multitrack datasets in the exact formats of their releases: MUSDB18-HQ and Slakh2100.

File names, folder structure and metadata.yaml keys are those of the releases; only the audio is
synthetic and short. Each mixture is the exact sum of its (quantised) stems, as in the releases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

MUSDB_RATE = 44100  # MUSDB18-HQ: 44.1 kHz stereo 16-bit WAV
SLAKH_RATE = 44100  # Slakh2100 (flac redux): 44.1 kHz mono 16-bit FLAC


def instrument(kind: str, frames: int, rate: int, seed: int, channels: int) -> np.ndarray:
    """int16 [frames, channels]: a recognisable signal per kind (tone, clicks, low tone, noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / rate
    if kind == "drums":
        signal = np.where((t % 0.25) < 0.01, rng.uniform(-1, 1, frames), 0.0) * 0.5
    elif kind == "bass":
        signal = 0.3 * np.sin(2 * np.pi * 55 * t)
    elif kind == "vocals":
        signal = 0.25 * np.sin(2 * np.pi * 440 * t + 3 * np.sin(2 * np.pi * 5 * t))
    else:
        signal = 0.15 * np.sin(2 * np.pi * rng.uniform(200, 1500) * t) + 0.02 * rng.standard_normal(frames)
    stereo = np.stack([signal * (1 - 0.2 * c) for c in range(channels)], axis=1)
    return np.round(stereo * 32767 / 4).astype(np.int16)  # / 4: sums of several stay within range


def write_pcm(path: Path, pcm: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, pcm, rate, subtype="PCM_16")


def write_musdb_track(root: Path, split: str, name: str, seconds: float = 1.5, seed: int = 0,
                      silent_first_half: str | None = None) -> dict[str, np.ndarray]:
    """root/split/name/{mixture,vocals,drums,bass,other}.wav; ``silent_first_half`` mutes one stem's first half."""
    frames = int(seconds * MUSDB_RATE)
    stems = {}
    for k, source in enumerate(("vocals", "drums", "bass", "other")):
        pcm = instrument(source, frames, MUSDB_RATE, seed + k, channels=2)
        if source == silent_first_half:
            pcm[: frames // 2] = 0
        stems[source] = pcm
        write_pcm(root / split / name / f"{source}.wav", pcm, MUSDB_RATE)
    mixture = np.sum([pcm.astype(np.int32) for pcm in stems.values()], axis=0).astype(np.int16)
    write_pcm(root / split / name / "mixture.wav", mixture, MUSDB_RATE)
    return stems


# (stem name, metadata fields, signal kind) as Slakh's metadata.yaml has them.
SLAKH_STEMS = [
    ("S00", {"inst_class": "Piano", "is_drum": False, "midi_program_name": "Acoustic Grand Piano", "program_num": 0,
             "plugin_name": "grand_piano.nkm"}, "other"),
    ("S01", {"inst_class": "Bass", "is_drum": False, "midi_program_name": "Electric Bass (finger)", "program_num": 33,
             "plugin_name": "scarbee_jay_bass_both.nkm"}, "bass"),
    ("S02", {"inst_class": "Drums", "is_drum": True, "midi_program_name": "Drums", "program_num": 0,
             "plugin_name": "session_kit_full.nkm"}, "drums"),
    ("S03", {"inst_class": "Guitar", "is_drum": False, "midi_program_name": "Distortion Guitar", "program_num": 30,
             "plugin_name": "elektrik_guitar.nkm"}, "other"),
    ("S04", {"inst_class": "Strings (continued)", "is_drum": False, "midi_program_name": "Choir Aahs",
             "program_num": 52, "plugin_name": "choir.nkm"}, "vocals"),
    ("S05", {"inst_class": "Organ", "is_drum": False, "midi_program_name": "Rock Organ", "program_num": 18,
             "plugin_name": "b3_organ.nkm"}, None),  # audio_rendered: false, no file
]


def slakh_metadata(stems: list[tuple[str, dict, str | None]]) -> str:
    lines = [
        "UUID: 1a81ae092884234f3264e2f45927f00a",
        "audio_dir: stems",
        "lmd_midi_dir: lmd_matched/O/O/H/TROOHTB128F931F9DF/1a81ae092884234f3264e2f45927f00a.mid",
        "midi_dir: MIDI",
        "normalization_factor: -13.0",
        "normalized: true",
        "overall_gain: 0.18270259567062658",
        "stems:",
    ]
    for name, fields, kind in stems:
        lines.append(f"  {name}:")
        entry = {"audio_rendered": kind is not None, **fields, "integrated_loudness": -13.0, "midi_saved": True}
        for key in sorted(entry):
            value = entry[key]
            lines.append(f"    {key}: {str(value).lower() if isinstance(value, bool) else value}")
    lines.append("target_peak: -1.0")
    return "\n".join(lines) + "\n"


def write_slakh_track(root: Path, split: str, number: int, seconds: float = 1.5, seed: int = 0) -> dict[str, np.ndarray]:
    """root/split/TrackNNNNN/{mix.flac, metadata.yaml, stems/SNN.flac, MIDI/}; returns the rendered stems."""
    track = root / split / f"Track{number:05d}"
    frames = int(seconds * SLAKH_RATE)
    rendered = {}
    for k, (name, _, kind) in enumerate(SLAKH_STEMS):
        if kind is not None:
            rendered[name] = instrument(kind, frames, SLAKH_RATE, seed + k, channels=1)
            write_pcm(track / "stems" / f"{name}.flac", rendered[name], SLAKH_RATE)
    (track / "MIDI").mkdir(parents=True, exist_ok=True)
    (track / "metadata.yaml").write_text(slakh_metadata(SLAKH_STEMS))
    mix = np.sum([pcm.astype(np.int32) for pcm in rendered.values()], axis=0).astype(np.int16)
    write_pcm(track / "mix.flac", mix, SLAKH_RATE)
    return rendered


def write_musdb_folder(root: Path, tracks: int, seconds: float) -> Path:
    """``tracks`` MUSDB18-HQ training tracks "Track 0", ...; every odd one has its vocals silent in the first half."""
    for i in range(tracks):
        write_musdb_track(root, "train", f"Track {i}", seconds=seconds, seed=10 * i,
                          silent_first_half="vocals" if i % 2 else None)
    return root
