"""What an evaluation embeds where, and the plan of it said before it starts.

Embedding audio is the expensive step, so it is organised around it: for each audio folder, the
union of the files that the tasks on that folder use is decoded once, for every model at a sample
rate, and each model embeds it once (cached on disk); every task on the folder then only selects
rows. Corrupted test audio is made once per (file, corruption, severity) and embedded by each
model under test the same way.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mucon.audio.io import AudioDecodeError, audio_info
from mucon.encoders import Encoder
from mucon.evaluation.embed import EmbeddingJob
from mucon.evaluation.embedding_cache import cached_embed_jobs
from mucon.evaluation.models import ModelEntry
from mucon.evaluation.protocols import Protocol
from mucon.evaluation.tasks import SPLITS, Task
from mucon.evaluation.windows import count_windows, embed_windows, spread_windows


@dataclasses.dataclass
class Folder:
    """The tasks that read one audio folder with one embedding setting (window cap, averaging: the
    protocol's, see ``Protocol.embedding_of``), and the files to embed there (clean, and corrupted)."""

    root: Path
    tasks: list[Task]
    paths: list[str]
    test_paths: list[str]
    max_windows: int | None
    average: bool

    @classmethod
    def group(cls, tasks: Sequence[Task], protocol: Protocol) -> list[Folder]:
        by_root: dict[tuple, list[Task]] = {}
        for task in tasks:
            by_root.setdefault((task.audio_root.resolve(), *protocol.embedding_of(task)), []).append(task)
        return [
            cls(
                root,
                group,
                sorted({path for task in group for path in task.paths}),
                sorted({task.paths[row] for task in group if task.type != "retrieval" for row in task.rows("test")}),
                max_windows,
                average,
            )
            for (root, max_windows, average), group in by_root.items()
        ]

    def embed(self, entries, conditions, cache_dir, seed, batch_size, precision, progress) -> tuple[dict, dict]:
        """Every model's clean embeddings of the folder, and the corrupted ones of its test files for
        every model (robustness): ``{model: FileEmbeddings}``, ``{model: {condition key: FileEmbeddings}}``.
        One pass over the files for all of them (see ``embed.embed_jobs``); the cache keeps each
        file's embedding, so a later run of any of these tasks costs no encoding."""
        setting = {"max_windows": self.max_windows, "average": self.average}
        jobs, owners = [], []
        for entry in entries:
            jobs.append(EmbeddingJob(entry.encoder, self.paths, None, entry.fingerprint, **setting))
            owners.append((entry.name, None))
            if self.test_paths:
                for condition in conditions.get(entry.name, ()):
                    jobs.append(EmbeddingJob(entry.encoder, self.test_paths, condition, entry.fingerprint, **setting))
                    owners.append((entry.name, condition.key))
        embedded = cached_embed_jobs(jobs, self.root, cache_dir, seed=seed, batch_size=batch_size,
                                     precision=precision, progress=progress, description=f"embedding {self.root.name}")
        clean, corrupted = {}, {entry.name: {} for entry in entries}
        for (name, condition_key), result in zip(owners, embedded):
            if condition_key is None:
                clean[name] = result
            else:
                corrupted[name][condition_key] = result
        return clean, corrupted


PLAN_SAMPLED_FILES = 200  # files whose headers the plan reads per folder; more are extrapolated from them


def _audio_seconds(root: Path, paths: Sequence[str]) -> dict[str, float]:
    """Seconds of (at most PLAN_SAMPLED_FILES, evenly chosen of) ``paths`` from their headers; unreadable: 0."""
    chosen = [paths[i] for i in spread_windows(len(paths), PLAN_SAMPLED_FILES)]
    seconds = {}
    for path in chosen:
        try:
            header = audio_info(root / path)
            seconds[path] = header.frames / header.sample_rate
        except AudioDecodeError:
            seconds[path] = 0.0
    return seconds


def _windows(seconds: Mapping[str, float], n_files: int, encoder: Encoder, max_windows: int | None) -> int:
    """The windows ``encoder`` embeds of ``n_files`` files, from the sampled files' durations."""
    per_file = [len(spread_windows(count_windows(round(length * encoder.sample_rate), encoder.input_samples,
                                                 encoder.input_samples), max_windows)) for length in seconds.values()]
    return round(sum(per_file) * n_files / max(1, len(per_file)))


def _seconds_per_window(encoder: Encoder, batch_size: int) -> float:
    """One batch of silent windows through ``encoder`` (after a warm-up one), timed: this machine's cost."""
    windows = torch.zeros(min(batch_size, 16), encoder.input_samples)
    with torch.inference_mode():
        embed_windows(encoder, windows[:1])
        started = time.perf_counter()
        embed_windows(encoder, windows)
    return (time.perf_counter() - started) / len(windows)


def evaluation_plan(folders: Sequence[Folder], entries: Sequence[ModelEntry], conditions: Mapping[str, list],
                    batch_size: int) -> str:
    """What evaluate is about to do and about how long its embedding takes here, said before any of it:
    models, tasks with their tracks per split, files and windows per folder, robustness conditions,
    and minutes from a timed batch of each model (decoding and corrupting add to it; files the cache
    holds are not embedded again)."""
    cost = {entry.name: _seconds_per_window(entry.encoder, batch_size) for entry in entries}
    lines = [f"plan: {len(entries)} model(s): " + ", ".join(f"{entry.name} ({entry.kind})" for entry in entries)]
    total_seconds, total_windows = 0.0, 0
    for folder in folders:
        for task in folder.tasks:
            counts = ", ".join(f"{split} {len(task.rows(split))}" for split in SPLITS if len(task.rows(split)))
            classes = f"; {len(task.classes)} classes" if task.classes else ""
            lines.append(f"  task {task.name} ({task.type}): {counts} tracks{classes}")
        seconds = _audio_seconds(folder.root, folder.paths)
        test_seconds = {path: seconds[path] for path in folder.test_paths if path in seconds} or seconds
        cap = folder.tasks[0].max_chunks
        lines.append(f"  folder {folder.root}: {len(folder.paths)} files, "
                     f"{sum(seconds.values()) * len(folder.paths) / max(1, len(seconds)) / 60:.1f} min of audio, "
                     + (f"at most {cap} windows per file" if cap else "every window of each file"))
        for entry in entries:
            windows = _windows(seconds, len(folder.paths), entry.encoder, cap)
            corrupted = len(conditions.get(entry.name, ())) * _windows(test_seconds, len(folder.test_paths),
                                                                         entry.encoder, cap)
            total_windows += windows + corrupted
            total_seconds += (windows + corrupted) * cost[entry.name]
            robust = f" + {corrupted} under {len(conditions[entry.name])} conditions" if corrupted else ""
            lines.append(f"    {entry.name}: {windows} windows{robust}")
    named = sorted({condition.key for chosen in conditions.values() for condition in chosen})
    lines.append(f"  robustness: {len(named)} condition(s)" + (f" ({', '.join(named)}) on the test files of the "
                 "models under test" if named else ""))
    lines.append(f"  embedding: {total_windows} windows, about {max(total_seconds / 60, 0.1):.1f} min of encoder "
                 "time here (decoding and corrupting add to it; what the cache holds is not embedded again)")
    return "\n".join(lines)
