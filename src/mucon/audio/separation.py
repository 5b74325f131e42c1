"""`mucon separate`: compute a folder's sources once, so that training never runs a separator.

``separate_folder(IN, OUT)`` reads IN through a layout (``mucon.data.layouts``: a folder of
audio files, a corpus, ...), separates every mixture and writes, per item, ``OUT/<path>/``
``mixture.wav`` and one WAV per source (mono float32 at the requested rate, sample-aligned with
the mixture), then ``OUT/metadata.csv`` (the item's labels and its ``stem_<source>`` files) and
``OUT/separated.json``. ``mucon prepare OUT`` reads that folder as the ``separated`` layout.

Writing is resumable: an item is done when its ``mixture.wav`` exists (written last, by rename),
so a killed run continues where it stopped and never redoes a finished item.

Separators:

- ``hpss`` (default, no weights, any machine): median-filtering harmonic/percussive separation on
  the STFT magnitude (Fitzgerald 2010) with soft masks, in torch, batched over fixed-length
  segments on ``device``. ``drums`` is the percussive part and ``other`` the rest, so the two
  stems sum to the mixture.
- ``demucs``: a Demucs model (the ``demucs`` package, which needs no torchaudio) loaded from a
  model file the user gives, with ``weights_only=True``. Its sources outside vocals, drums,
  bass and other (the 6-source model's guitar and piano) are summed into ``other``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from mucon.audio.io import AudioDecodeError, load_audio
from mucon.data.layouts import SOURCE_TYPES, read_table
from mucon.data.layouts.tables import SEPARATED_JSON, STEM_COLUMNS
from mucon.files import write_atomically
from mucon.precision import checked_device

FORMAT_NAME = "mucon-separated"
FORMAT_VERSION = 1
MIXTURE = "mixture.wav"


class HPSSSeparator:
    """Harmonic/percussive separation: drums = percussive soft mask, other = mixture - drums.

    The mask of a frame depends on ``kernel`` frames around it, so a track is cut into segments
    of ``segment_seconds`` with enough context on both sides that the kept middles are what a
    whole-track pass would give; segments of several tracks share a batch.
    """

    name = "hpss"
    sources = ("drums", "other")
    channels = 1

    def __init__(self, sample_rate: int, device: str | torch.device = "cpu", *, n_fft: int = 2048, hop: int = 512,
                 kernel: int = 17, power: float = 2.0, segment_seconds: float = 10.0, batch_size: int = 4):
        if batch_size < 1:
            raise ValueError(f"the batch size must be 1 or more, got {batch_size}")
        self.sample_rate = sample_rate
        self.device = torch.device(device)
        self.n_fft, self.hop, self.kernel, self.power = n_fft, hop, kernel, power
        self.batch_size = batch_size
        self.window = torch.hann_window(n_fft, device=self.device)
        self.context = (kernel // 2 + n_fft // hop) * hop
        self.segment = max(1, round(segment_seconds * sample_rate / hop)) * hop

    def settings(self) -> dict:
        """What its output depends on (segmenting and batching do not change it)."""
        return {"n_fft": self.n_fft, "hop": self.hop, "kernel": self.kernel, "power": self.power}

    def _segments(self, audio: torch.Tensor) -> torch.Tensor:
        """[T] -> [n, segment + 2 context]: overlapping windows whose middles tile the track."""
        n = max(1, -(-audio.shape[-1] // self.segment))
        padded = F.pad(audio, (self.context, n * self.segment - audio.shape[-1] + self.context))
        return padded.unfold(-1, self.segment + 2 * self.context, self.segment)

    @staticmethod
    def _median(magnitude: torch.Tensor, kernel: int, dim: int) -> torch.Tensor:
        moved = magnitude.transpose(dim, -1)
        padded = F.pad(moved, (kernel // 2, kernel // 2), mode="replicate")
        return padded.unfold(-1, kernel, 1).median(dim=-1).values.transpose(dim, -1)

    @torch.no_grad()
    def _percussive(self, segments: torch.Tensor) -> torch.Tensor:
        """[B, L] -> the percussive part of each segment's middle, [B, segment]."""
        spectrum = torch.stft(segments, self.n_fft, self.hop, window=self.window, return_complex=True)
        magnitude = spectrum.abs()
        harmonic = self._median(magnitude, self.kernel, dim=-1) ** self.power  # smooth in time
        percussive = self._median(magnitude, self.kernel, dim=-2) ** self.power  # smooth in frequency
        mask = percussive / (harmonic + percussive).clamp_min(torch.finfo(magnitude.dtype).tiny)
        waves = torch.istft(spectrum * mask, self.n_fft, self.hop, window=self.window, length=segments.shape[-1])
        return waves[:, self.context : self.context + self.segment]

    def _run(self, pending: list[tuple[object, np.ndarray, torch.Tensor]]) -> Iterator[tuple[object, np.ndarray]]:
        segments = torch.cat([item_segments for _, _, item_segments in pending])
        percussive = torch.cat([
            self._percussive(segments[first : first + self.batch_size].to(self.device)).cpu()
            for first in range(0, len(segments), self.batch_size)
        ])
        for key, audio, item_segments in pending:
            mixture = torch.from_numpy(audio[0])
            drums = percussive[: len(item_segments)].reshape(-1)[: mixture.shape[-1]]
            percussive = percussive[len(item_segments) :]
            yield key, torch.stack([drums, mixture - drums]).unsqueeze(1).numpy()

    def separate(self, tracks: Iterable[tuple[object, np.ndarray]]) -> Iterator[tuple[object, np.ndarray]]:
        """(key, mixture [1, T]) -> (key, stems [2, 1, T]), in input order."""
        pending, n_segments = [], 0
        for key, audio in tracks:
            item_segments = self._segments(torch.from_numpy(audio[0]))
            pending.append((key, audio, item_segments))
            n_segments += len(item_segments)
            if n_segments >= self.batch_size:
                yield from self._run(pending)
                pending, n_segments = [], 0
        if pending:
            yield from self._run(pending)


class DemucsSeparator:
    """A Demucs model file (the package the Demucs release saves: klass, args, kwargs, state).

    It is loaded with ``weights_only=True`` and only Demucs's own model classes allowed, so a
    model file cannot run code. Quantized models (``*_q``) need the ``diffq`` package and are refused.
    """

    name = "demucs"

    def __init__(self, model_path: str | os.PathLike, device: str | torch.device = "cpu", *, overlap: float = 0.25):
        try:
            from demucs.apply import apply_model
            from demucs.demucs import Demucs
            from demucs.hdemucs import HDemucs
            from demucs.htdemucs import HTDemucs
        except ImportError as error:
            raise ValueError("the demucs separator needs the demucs package: pip install 'demucs>=4.1'") from error
        self.model_path = Path(model_path)
        try:
            with torch.serialization.safe_globals([Demucs, HDemucs, HTDemucs, Fraction]):
                package = torch.load(self.model_path, map_location="cpu", weights_only=True)
            state = package["state"]
            if state.get("__quantized"):
                raise ValueError(f"{self.model_path}: a quantized Demucs model (needs diffq); use a non-quantized one")
            model = package["klass"](*package["args"], **package["kwargs"])
            model.load_state_dict(state)
        except (OSError, RuntimeError, KeyError, TypeError, AttributeError, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(f"{self.model_path}: not a Demucs model file mucon can load ({error})") from error
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.apply_model = apply_model
        self.overlap = overlap
        self.sources = tuple(model.sources)
        self.sample_rate = int(model.samplerate)
        self.channels = int(model.audio_channels)

    def settings(self) -> dict:
        digest = hashlib.sha256(self.model_path.read_bytes()).hexdigest()
        return {"model": str(self.model_path.resolve()), "sha256": digest, "overlap": self.overlap}

    @torch.no_grad()
    def separate(self, tracks: Iterable[tuple[object, np.ndarray]]) -> Iterator[tuple[object, np.ndarray]]:
        """(key, mixture [C, T]) -> (key, stems [S, C, T]); the mixture is standardised as Demucs expects."""
        for key, audio in tracks:
            mixture = torch.from_numpy(audio)
            reference = mixture.mean(0)
            mean, std = reference.mean(), reference.std() + 1e-8
            stems = self.apply_model(self.model, ((mixture - mean) / std)[None], shifts=0, split=True,
                                     overlap=self.overlap, device=self.device)[0]
            yield key, (stems.cpu() * std + mean).numpy()


SEPARATORS = ("hpss", "demucs")


def make_separator(name: str, sample_rate: int, device: str = "cpu", *, model: str | os.PathLike | None = None,
                   batch_size: int = 4):
    """The separator called ``name``; ``model`` is the weights file of one that needs weights."""
    checked_device(device)
    if name == "hpss":
        if model is not None:
            raise ValueError("the hpss separator takes no model file")
        return HPSSSeparator(sample_rate, device, batch_size=batch_size)
    if name == "demucs":
        if model is None:
            raise ValueError("the demucs separator needs --model PATH (a Demucs model file, e.g. htdemucs's .th)")
        return DemucsSeparator(model, device)
    raise ValueError(f"unknown separator {name!r}; separators: {', '.join(SEPARATORS)}")


@dataclass
class SeparationReport:
    separated: int
    already_done: int
    failed: int
    seconds_of_audio: float
    wall_seconds: float
    out_dir: Path

    def summary(self) -> str:
        speed = self.seconds_of_audio / self.wall_seconds if self.wall_seconds > 0 else float("inf")
        line = (f"separated {self.separated} files ({self.seconds_of_audio / 60:.1f} min of audio) in "
                f"{self.wall_seconds:.1f} s: {speed:.1f} s of audio per second; {self.already_done} already done")
        if self.failed:
            line += f"; failed {self.failed}, listed in {self.out_dir / 'skipped.csv'}"
        return line + f"; prepare it with `mucon prepare {self.out_dir} STORE`"


def _as_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """[C, T] -> [channels, T]: kept when it matches, else averaged and repeated."""
    if audio.shape[0] == channels:
        return audio
    return np.repeat(audio.mean(axis=0, keepdims=True), channels, axis=0)


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Float WAV, atomically, so a file that exists is whole (float keeps stems summing to the mixture)."""
    write_atomically(path, lambda handle: sf.write(handle, audio, sample_rate, subtype="FLOAT", format="WAV"))


def _mono_at(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    mono = audio.mean(axis=0, dtype=np.float32)
    return mono if from_rate == to_rate else soxr.resample(mono, from_rate, to_rate, quality="HQ").astype(np.float32)


def _fitted(stem: np.ndarray, length: int) -> np.ndarray:
    """A stem cut or zero-padded to its mixture's length (resampling two ways can differ by a sample)."""
    return stem[:length] if len(stem) >= length else np.pad(stem, (0, length - len(stem)))


def _stem_types(sources: tuple[str, ...]) -> dict[str, list[int]]:
    """Source type -> the separator's outputs summed into it (its unknown kinds go to other)."""
    types: dict[str, list[int]] = {}
    for index, source in enumerate(sources):
        types.setdefault(source if source in SOURCE_TYPES else "other", []).append(index)
    return {source: types[source] for source in SOURCE_TYPES if source in types}


def _start(out_dir: Path, description: dict) -> None:
    """Write separated.json, or check that an unfinished OUT was started with the same settings."""
    marker = out_dir / SEPARATED_JSON
    if marker.exists():
        found = json.loads(marker.read_text())
        if found != description:
            raise ValueError(f"{out_dir} holds sources separated from other inputs or with other settings "
                             f"({found.get('separator')}, {found.get('sample_rate')} Hz); choose another folder")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(marker, lambda handle: handle.write(json.dumps(description, indent=2)), mode="w")


def separate_folder(
    in_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    sample_rate: int,
    *,
    separator: str = "hpss",
    model: str | os.PathLike | None = None,
    device: str = "cpu",
    batch_size: int = 4,
    layout: str | None = None,
    splits: list[str] | None = None,
    progress: bool = True,
) -> SeparationReport:
    """Separate every mixture of ``in_dir`` into ``out_dir`` (see the module docstring); resumable."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"the sample rate must be a positive whole number of Hz, got {sample_rate!r}")
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"the output path is a file, not a folder: {out_dir}")
    table = read_table(in_dir, layout, splits=splits)
    engine = make_separator(separator, sample_rate, device, model=model, batch_size=batch_size)
    stem_types = _stem_types(engine.sources)
    _start(out_dir, {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "separator": engine.name, "settings": engine.settings(),
        "sample_rate": sample_rate, "sources": list(stem_types), "source_dir": str(in_dir.resolve()),
        "layout": table.layout, "splits": splits or None,
    })

    folders = _item_folders(table.tracks)
    todo = [track for track in table.tracks if track.problem or not (out_dir / folders[track.path] / MIXTURE).exists()]
    failed: list[tuple[str, str, str]] = []
    bar = tqdm(total=len(todo), desc=f"separating ({engine.name})", unit="file", disable=not progress)
    seconds = 0.0

    def decoded() -> Iterator[tuple[tuple, np.ndarray]]:
        """((track, mixture as the store will hold it), the separator's input), for each readable item."""
        for track in todo:
            path = in_dir / track.path
            try:
                if track.problem is not None:
                    raise AudioDecodeError(path, *track.problem)
                audio = np.atleast_2d(load_audio(path, engine.sample_rate, mono=engine.channels == 1))
                audio = _as_channels(audio, engine.channels)
                same = engine.channels == 1 and engine.sample_rate == sample_rate
                mixture = audio[0] if same else load_audio(path, sample_rate)
            except AudioDecodeError as error:
                failed.append((track.path, error.reason, error.detail))
                bar.update()
                continue
            yield (track, mixture), audio

    started = time.perf_counter()
    for (track, mixture), stems in engine.separate(decoded()):
        folder = out_dir / folders[track.path]
        folder.mkdir(parents=True, exist_ok=True)
        for source, outputs in stem_types.items():
            stem = _mono_at(stems[outputs].sum(axis=0), engine.sample_rate, sample_rate)
            _write_wav(folder / f"{source}.wav", _fitted(stem, len(mixture)), sample_rate)
        _write_wav(folder / MIXTURE, mixture, sample_rate)  # last: it marks the item done
        seconds += len(mixture) / sample_rate
        bar.update()
    wall = time.perf_counter() - started
    bar.close()
    _write_tables(out_dir, table, folders, stem_types, failed)
    return SeparationReport(len(todo) - len(failed), len(table.tracks) - len(todo), len(failed), seconds, wall, out_dir)


def _item_folders(tracks) -> dict[str, str]:
    """Item path -> its output folder: the path without its extension, or with it where two would meet.

    Only tracks without a problem get one: a path outside the input folder (the layout marks it) would
    put its folder outside OUT.
    """
    stems = {}
    for track in tracks:
        if track.problem is None:
            stems.setdefault(str(Path(track.path).with_suffix("")), []).append(track.path)
    return {path: (folder if len(paths) == 1 else path) for folder, paths in stems.items() for path in paths}


def _write_tables(out_dir: Path, table, folders: dict[str, str], stem_types: dict[str, list[int]],
                  failed: list[tuple[str, str, str]]) -> None:
    """metadata.csv (every finished item: its labels, without the input's own stem columns) and skipped.csv."""
    kept_labels = [i for i, name in enumerate(table.label_columns) if name not in STEM_COLUMNS]
    header = ["path", "original_path", *(table.label_columns[i] for i in kept_labels), *(f"stem_{s}" for s in stem_types)]
    rows = []
    for track in table.tracks:
        folder = folders.get(track.path)
        if track.problem is None and (out_dir / folder / MIXTURE).exists():
            rows.append([f"{folder}/{MIXTURE}", track.path, *(track.labels[i] for i in kept_labels),
                         *(f"{folder}/{source}.wav" for source in stem_types)])
    _write_csv(out_dir / "metadata.csv", header, rows)
    _write_csv(out_dir / "skipped.csv", ["path", "reason", "detail"], failed)


def _write_csv(path: Path, header: list[str], rows: Iterable[Iterable[str]]) -> None:
    def write(handle) -> None:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)

    write_atomically(path, write, mode="w")
