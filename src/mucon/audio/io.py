"""Decode any audio file to float32 at the sample rate a model expects.

Every other module reads audio through ``load_audio`` so that decoding, down-mixing and
resampling happen one way everywhere, and a bad file fails with one exception type whose
``reason`` is a short category that reports can count.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})

# libsndfile's public error codes (sndfile.h); anything else it raises is a broken stream.
_SF_ERR_UNRECOGNISED_FORMAT = 1
_SF_ERR_SYSTEM = 2


class AudioDecodeError(Exception):
    """A file that cannot become audio; ``reason`` is a category, ``detail`` the specifics.

    Categories used in mucon: "unreadable", "not audio", "corrupt", "empty", "silent",
    "too short". Keeping them few lets a prepare run report counts per reason.
    """

    def __init__(self, path: str | os.PathLike, reason: str, detail: str = ""):
        self.path = os.fspath(path)
        self.reason = reason
        self.detail = detail
        super().__init__(self.path, reason, detail)

    def __str__(self) -> str:
        suffix = f" ({self.detail})" if self.detail else ""
        return f"{self.path}: {self.reason}{suffix}"


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the extension (any case) is one mucon decodes."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def _reason_for(error: sf.LibsndfileError) -> str:
    if error.code == _SF_ERR_UNRECOGNISED_FORMAT:
        return "not audio"
    if error.code == _SF_ERR_SYSTEM:
        return "unreadable"
    return "corrupt"


def load_audio(path: str | os.PathLike, sample_rate: int, mono: bool = True) -> np.ndarray:
    """Decode ``path`` to float32 at ``sample_rate``: shape [samples] if mono else [channels, samples].

    Channels are averaged (not summed) so a mono mix keeps the original level.
    """
    try:
        if os.path.getsize(path) == 0:
            raise AudioDecodeError(path, "empty", "0 bytes")
    except OSError as error:
        raise AudioDecodeError(path, "unreadable", error.strerror or str(error)) from error
    try:
        frames, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        raise AudioDecodeError(path, _reason_for(error), error.error_string) from error
    except (sf.SoundFileError, RuntimeError, ValueError) as error:
        raise AudioDecodeError(path, "corrupt", str(error)) from error
    if frames.shape[0] == 0:
        raise AudioDecodeError(path, "empty", "0 frames")
    if not np.isfinite(frames).all():
        raise AudioDecodeError(path, "corrupt", "NaN or infinite samples")
    if mono:
        frames = frames.mean(axis=1, dtype=np.float32, keepdims=True)
    if file_rate != sample_rate:
        frames = soxr.resample(frames, file_rate, sample_rate, quality="HQ")
    audio = np.ascontiguousarray(frames.T, dtype=np.float32)
    return audio[0] if mono else audio
