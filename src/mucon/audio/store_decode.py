"""Decoding a store's inputs: each item, its mixture and its stems, into a spill file of int16 PCM.

Decoders stream each item into a spill file next to the shards (memory stays flat in the file's
length), in worker processes or in this one; ``decode_in_order`` hands the results to the writer
(``mucon.audio.store_writer``) in input order, which appends each spill to the current shard.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mucon.audio.io import AudioDecodeError, audio_info, check_duration, decode_blocks, peak_gain
from mucon.audio.store_format import SAMPLE_DTYPE, to_int16
from mucon.data.layouts import SOURCE_TYPES, Track

SILENCE_PEAK = 1e-4


def _stem_problem(mixture: str, source: str, stem: str, reason: str, detail: str) -> AudioDecodeError:
    """A stem's problem reported on its track: the track is what gets skipped."""
    return AudioDecodeError(mixture, reason, f"{source} stem {stem}: {detail}")


def _checked_stems(track: Track, root: str, mixture: str) -> list[tuple[int, str, list[str]]]:
    """(bit, source, files) per stem type, after checking each file against the mixture's header.

    A missing stem, one at another rate and one of another length are found here, before any
    decoding, and named with their track.
    """
    if not track.stems:
        return []
    expected = audio_info(mixture)
    checked = []
    for source, files in track.stems:
        for stem in files:
            path = os.path.join(root, stem)
            if not os.path.lexists(path):
                raise _stem_problem(mixture, source, stem, "missing stem", "no such file")
            try:
                info = audio_info(path)
            except AudioDecodeError as error:
                raise _stem_problem(mixture, source, stem, error.reason, error.detail) from error
            if info.sample_rate != expected.sample_rate:
                raise _stem_problem(mixture, source, stem, "stem sample rate",
                                    f"{info.sample_rate} Hz, the mixture {expected.sample_rate} Hz")
            if info.frames != expected.frames:
                raise _stem_problem(mixture, source, stem, "stem length",
                                    f"{info.frames} frames, the mixture {expected.frames}")
        checked.append((1 << SOURCE_TYPES.index(source), source, [os.path.join(root, stem) for stem in files]))
    return checked


def _summed_blocks(streams: list[Iterator[np.ndarray]], mixture: str, source: str) -> Iterator[np.ndarray]:
    """Several stems of one type (Slakh's instruments) as one stream: their sum, block by block."""
    if len(streams) == 1:
        yield from streams[0]
        return
    while True:
        blocks = [next(stream, None) for stream in streams]
        if all(block is None for block in blocks):
            return
        if any(block is None for block in blocks) or len({len(block) for block in blocks}) > 1:
            raise AudioDecodeError(mixture, "stem length", f"the {source} stems decode to different lengths")
        yield np.sum(blocks, axis=0, dtype=np.float32)


def _write_track(out, blocks: Iterator[np.ndarray]) -> tuple[int, float, bool]:
    """Quantise a stream into ``out``; returns its samples, its peak and whether any sample is non-zero."""
    samples, peak, audible = 0, 0.0, False
    for block in blocks:
        peak = max(peak, float(np.abs(block).max()))
        pcm = to_int16(block)
        audible = audible or bool(pcm.any())
        out.write(pcm.astype(SAMPLE_DTYPE, copy=False).tobytes())
        samples += len(pcm)
    return samples, peak, audible


def _write_item(track: Track, root: str, sample_rate: int, min_seconds: float, spill: str, gain: float):
    """Stream the mixture, then each stem type, into ``spill``; returns (samples, sources bit mask, peak,
    the header's seconds where the mixture is truncated, else 0).

    The mixture is checked (too short, silent) before its stems are decoded; a stem type whose
    samples all quantise to 0 is cut off again, so it costs no disk.
    """
    mixture = os.path.join(root, track.path)
    stems = _checked_stems(track, root, mixture)
    header_seconds = []
    with open(spill, "wb") as out:
        blocks = decode_blocks(mixture, sample_rate, gain=gain, on_truncated=lambda header, _: header_seconds.append(header))
        length, peak, _ = _write_track(out, blocks)
        check_duration(mixture, length, sample_rate, min_seconds)
        if peak < SILENCE_PEAK:
            raise AudioDecodeError(mixture, "silent", f"peak {peak:.1e} < {SILENCE_PEAK:.0e}")
        sources = 0
        for bit, source, files in stems:
            start = out.tell()
            streams = [decode_blocks(path, sample_rate, gain=gain) for path in files]
            try:
                samples, stem_peak, audible = _write_track(out, _summed_blocks(streams, mixture, source))
            except AudioDecodeError as error:
                if error.path == mixture:
                    raise
                raise _stem_problem(mixture, source, os.path.relpath(error.path, root), error.reason, error.detail) from error
            if samples != length:
                raise AudioDecodeError(mixture, "stem length", f"{source} stem decodes to {samples} samples, "
                                       f"the mixture to {length}")
            peak = max(peak, stem_peak)
            if audible:
                sources |= bit
            else:
                out.seek(start)
                out.truncate()
    return length, sources, peak, header_seconds[0] if header_seconds else 0.0


@dataclass(frozen=True)
class Decoded:
    """An item a decoder left in its spill file: the mixture, then the stems in ``sources``, ``length`` samples each."""

    spill: str
    length: int
    sources: int
    peak: float
    header_seconds: float


def _decode_item(track: Track, root: str, sample_rate: int, min_seconds: float, spill: str) -> Decoded | AudioDecodeError:
    """Decode one input into its spill file, or return (not raise) why it cannot be kept.

    Runs in worker processes, so it returns the error: the writer decides, in input order,
    whether a bad file is skipped or stops the run. An item peaking above 1 is decoded a second
    time with one gain for the mixture and its stems (scaled, not clipped, and still summing up).
    """
    try:
        if track.problem is not None:
            raise AudioDecodeError(os.path.join(root, track.path), *track.problem)
        length, sources, peak, header_seconds = _write_item(track, root, sample_rate, min_seconds, spill, gain=1.0)
        if peak > 1.0:
            length, sources, _, _ = _write_item(track, root, sample_rate, min_seconds, spill, gain=peak_gain(peak))
        return Decoded(spill, length, sources, peak, header_seconds)
    except AudioDecodeError as error:
        Path(spill).unlink(missing_ok=True)
        return error


def _exit_with_parent() -> None:
    """Worker initializer: when the preparing process is killed (kill -9 included), stop too.

    Pool workers otherwise wait forever on their task queue, and every interrupted run would
    leave idle decoders behind.
    """

    def wait_then_exit() -> None:
        multiprocessing.parent_process().join()
        os._exit(1)

    threading.Thread(target=wait_then_exit, daemon=True).start()


def decode_in_order(
    jobs: Iterable[tuple], sample_rate: int, min_seconds: float, num_workers: int
) -> Iterator[Decoded | AudioDecodeError]:
    """Decode (track, root, spill) jobs in parallel but yield in input order, a bounded number in flight."""
    if num_workers <= 1:
        for track, root, spill in jobs:
            yield _decode_item(track, root, sample_rate, min_seconds, spill)
        return
    # forkserver/spawn rather than fork: the caller may hold threads (tqdm, torch) that fork copies badly.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(num_workers, context, initializer=_exit_with_parent)
    try:
        in_flight = deque()
        for track, root, spill in jobs:
            in_flight.append(pool.submit(_decode_item, track, root, sample_rate, min_seconds, spill))
            if len(in_flight) >= 4 * num_workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
