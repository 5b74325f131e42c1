"""Decode any audio file to float32 at the sample rate a model expects.

Every other module reads audio through this module so that decoding, down-mixing, resampling and
level handling happen one way everywhere, and a bad file fails with one exception type whose
``reason`` is a short category that reports can count.

Decoding streams: ``decode_blocks`` reads a file in blocks and resamples them with a streaming
resampler, so ``prepare`` holds a few blocks of a two-hour file, never the file. ``load_audio``
is the same stream gathered into one array, so both see the same samples.

Level: a decoded signal whose peak exceeds 1 (float files can hold any value; resampling a
full-scale file can overshoot) is scaled down to peak 1, never clipped. ``peak_gain`` is that
rule; ``load_audio`` applies it to the file, ``prepare`` to the item (mixture and stems by one
factor, so the stems still sum to the mixture) and lists what it scaled.

File names are opened as the bytes the file system holds (``os.fsencode``): a name that is not
valid UTF-8 is a name like any other.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"})
BLOCK_FRAMES = 2**16
# What audio holding NaN or Inf is refused as, wherever it comes in (files, the HEAR API): it embeds to NaN.
NON_FINITE = "NaN or infinite samples"
# Options for every CSV that holds scanned file names: bytes that are not UTF-8 are kept as they are.
PATH_CSV_OPTIONS = {"newline": "", "encoding": "utf-8", "errors": "surrogateescape"}

# libsndfile's public error codes (sndfile.h); anything else it raises is a broken stream.
_SF_ERR_UNRECOGNISED_FORMAT = 1
_SF_ERR_SYSTEM = 2


class AudioDecodeError(Exception):
    """A file that cannot become audio; ``reason`` is a category, ``detail`` the specifics.

    Categories used in mucon: "unreadable", "not audio", "corrupt", "empty", "silent",
    "too short", and for multitrack items "missing stem", "stem length", "stem sample rate".
    Keeping them few lets a prepare run report counts per reason.
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


def peak_gain(peak: float) -> float:
    """The factor that brings a signal of this peak within [-1, 1]: 1 unless the peak exceeds 1."""
    return 1.0 if peak <= 1.0 else 1.0 / peak


def _reason_for(error: sf.LibsndfileError) -> str:
    if error.code == _SF_ERR_UNRECOGNISED_FORMAT:
        return "not audio"
    if error.code == _SF_ERR_SYSTEM:
        return "unreadable"
    return "corrupt"


def _open(path: str | os.PathLike) -> sf.SoundFile:
    """Open for reading, by the name's bytes; every failure becomes an ``AudioDecodeError``."""
    try:
        if os.path.getsize(path) == 0:
            raise AudioDecodeError(path, "empty", "0 bytes")
    except OSError as error:
        raise AudioDecodeError(path, "unreadable", error.strerror or str(error)) from error
    try:
        return sf.SoundFile(os.fsencode(path))
    except sf.LibsndfileError as error:
        raise AudioDecodeError(path, _reason_for(error), error.error_string) from error
    except (sf.SoundFileError, RuntimeError, ValueError) as error:
        raise AudioDecodeError(path, "corrupt", str(error)) from error


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: frames and rate at the file's own rate."""

    frames: int
    sample_rate: int
    channels: int


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """The header of ``path`` without decoding it (stems are checked against their mixture this way)."""
    with _open(path) as audio_file:
        return AudioInfo(audio_file.frames, audio_file.samplerate, audio_file.channels)


def decode_blocks(
    path: str | os.PathLike,
    sample_rate: int,
    *,
    mono: bool = True,
    gain: float = 1.0,
    block_frames: int = BLOCK_FRAMES,
    on_truncated: Callable[[float, float], None] | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``path`` as float32 blocks at ``sample_rate``, times ``gain``: [n] if mono else [channels, n].

    Memory stays at a few blocks whatever the file's length. The blocks depend only on the file
    and these arguments, so decoding twice gives the same samples (``prepare`` relies on that
    when it decodes again to scale a file down). Raises ``AudioDecodeError`` for a bad file,
    also part-way through the stream. A file whose data ends before its header says (a truncated
    MP3) decodes to the samples it holds, as ``soundfile.read`` does, and ``on_truncated`` is
    called with the header's and the decoded duration in seconds.
    """
    with _open(path) as audio_file:
        channels = 1 if mono else audio_file.channels
        resampler = None
        if audio_file.samplerate != sample_rate:
            resampler = soxr.ResampleStream(audio_file.samplerate, sample_rate, channels, dtype="float32", quality="HQ")
        decoded = 0
        try:
            for block in _read_blocks(audio_file, block_frames):
                if not np.isfinite(block).all():
                    raise AudioDecodeError(path, "corrupt", NON_FINITE)
                decoded += len(block)
                if mono:
                    block = block.mean(axis=1, dtype=np.float32, keepdims=True)
                if resampler is not None:
                    block = resampler.resample_chunk(block, last=False)
                if len(block):
                    yield _shaped(block, mono, gain)
        except (sf.SoundFileError, RuntimeError) as error:
            raise AudioDecodeError(path, "corrupt", str(error)) from error
        if decoded == 0:
            raise AudioDecodeError(path, "empty", "0 frames")
        if decoded < audio_file.frames and on_truncated is not None:
            on_truncated(audio_file.frames / audio_file.samplerate, decoded / audio_file.samplerate)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)
            if len(tail):
                yield _shaped(tail, mono, gain)


def _read_blocks(audio_file: sf.SoundFile, block_frames: int) -> Iterator[np.ndarray]:
    """[n, channels] float32 blocks until the data ends.

    Not ``SoundFile.blocks``: it reads the header's frame count into one reused buffer, so where the
    data ends early (a truncated MP3) the rest of the buffer kept earlier audio and came back as samples.
    """
    while len(block := audio_file.read(block_frames, dtype="float32", always_2d=True)):
        yield block


def _shaped(frames: np.ndarray, mono: bool, gain: float) -> np.ndarray:
    """[n, channels] -> [n] or [channels, n], contiguous, times ``gain``."""
    audio = np.ascontiguousarray(frames[:, 0] if mono else frames.T, dtype=np.float32)
    if gain != 1.0:
        audio *= np.float32(gain)
    return audio


def check_duration(path: str | os.PathLike, samples: int, sample_rate: int, min_seconds: float = 0.0) -> None:
    """The one too-short rule: ``samples`` at ``sample_rate`` shorter than ``min_seconds`` (``prepare``'s
    --min-seconds), or no sample at all, is an ``AudioDecodeError`` "too short", which every command
    that reads a folder skips and lists. (A 1-sample file at 44.1 kHz decodes to no sample at 16 kHz;
    unchecked, it stopped `mucon embed` for the whole folder without naming the file.)
    """
    if samples == 0:
        raise AudioDecodeError(path, "too short", f"no sample at {sample_rate} Hz")
    if samples / sample_rate < min_seconds:
        raise AudioDecodeError(path, "too short", f"{samples / sample_rate:.3f} s < {min_seconds} s")


def load_audio(path: str | os.PathLike, sample_rate: int, mono: bool = True) -> np.ndarray:
    """Decode ``path`` to float32 at ``sample_rate``: shape [samples] if mono else [channels, samples].

    Channels are averaged (not summed) so a mono mix keeps the original level; a result whose
    peak exceeds 1 is scaled down to peak 1 (see the module docstring).
    """
    blocks = list(decode_blocks(path, sample_rate, mono=mono))
    check_duration(path, sum(block.shape[-1] for block in blocks), sample_rate)
    audio = np.concatenate(blocks, axis=-1)
    gain = peak_gain(float(np.abs(audio).max()))
    if gain != 1.0:
        audio *= np.float32(gain)
    return audio


def walk_audio_files(folder: str | os.PathLike) -> tuple[list[str], list[tuple[str, str]]]:
    """Audio files below ``folder`` (relative posix paths, sorted) and the sub-folders that could not be read.

    Symbolic links to folders are followed; a folder reached twice (a link back up, or two links
    to one place) is walked once, under the first path that reaches it (folders are walked in name
    order), so a loop cannot recurse and no file is listed twice.
    Each unreadable folder comes back as (relative path, why), for the caller to list. Every command
    that reads a folder of audio walks it here, so none finds files another misses; a folder with no
    audio file raises ``FileNotFoundError`` naming it, where an empty result would let a command
    report success on nothing.
    """
    files: list[str] = []
    unreadable: list[tuple[str, str]] = []
    root = os.fspath(folder)
    seen: set[tuple[int, int]] = set()

    def walk(relative: str) -> None:
        path = os.path.join(root, relative) if relative else root
        try:
            status = os.stat(path)
            if (status.st_dev, status.st_ino) in seen:
                return
            seen.add((status.st_dev, status.st_ino))
            with os.scandir(path) as entries:
                children = sorted(entries, key=lambda entry: entry.name)
        except OSError as error:
            unreadable.append((relative or ".", error.strerror or str(error)))
            return
        for entry in children:
            child = f"{relative}/{entry.name}" if relative else entry.name
            try:
                is_folder = entry.is_dir()  # follows links
            except OSError:
                is_folder = False
            if is_folder:
                walk(child)
            elif is_audio_path(entry.name):
                files.append(child)

    walk("")
    if not files:
        unread = "".join(f"; could not read {path} ({why})" for path, why in unreadable)
        raise FileNotFoundError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in it or its "
                                f"sub-folders{unread}")
    return sorted(files), unreadable
