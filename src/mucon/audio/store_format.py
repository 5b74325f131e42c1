"""The prepared store's on-disk format: what ``prepare_store`` writes and ``AudioStore`` reads.

Layout of a finished store (everything per item is a numpy array, so a million-item store
opens without a Python object per item)::

    store.json            format version, sample_rate, source types, counts, what it was built from
    shard-00000.i16 ...   raw little-endian int16 PCM, items back to back, up to shard_bytes each
                          (an item never spans shards, so a longer item gets a shard of its own);
                          an item is its mixture followed by its stored stems in source-type order
    index-shard.npy       int32  [N]    shard number of item i
    index-offset.npy      int64  [N]    first sample of item i inside its shard
    index-length.npy      int64  [N]    samples of item i (of its mixture, and of each of its stems)
    index-sources.npy     bool   [N, S] item i has a stored stem of source type source_names[s]
    paths-blob.npy        uint8  [B]    utf-8 item paths (relative to the audio folder), concatenated
    paths-offsets.npy     int64  [N+1]  item i's path is blob[offsets[i]:offsets[i+1]]
    index-rms.npy         float32 [N, 1+S] RMS (x in [-1, 1)) of item i's whole mixture, then of each of its
                          stems in source_names order (0 where it has none): the item's level, which COLA and
                          MSCOL scale by (a store prepared before it existed measures it on first use, once)
    labels.csv            only when the layout has label columns: their rows for kept items, in store order
    skipped.csv           path, reason, detail for every input that was not kept
    normalised.csv        only when some item peaked above 1: path, peak, the gain it was scaled by
    truncated.csv         only when some mixture's data ended before its header said (a cut-off MP3): path,
                          the header's seconds, the seconds decoded and kept

One module holds these names and types so that the writer and the reader cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mucon.files import write_atomically

FORMAT_NAME = "mucon-audio-store"
FORMAT_VERSION = 2  # 2: stems next to the mixture (index-sources.npy)

STORE_JSON = "store.json"
LABELS_CSV = "labels.csv"
SKIPPED_CSV = "skipped.csv"
NORMALISED_CSV = "normalised.csv"
TRUNCATED_CSV = "truncated.csv"
LEVELS_NPY = "index-rms.npy"
# The index arrays, file name (without .npy) -> the dtype it is stored as.
INDEX_DTYPES = {
    "index-shard": np.int32,
    "index-offset": np.int64,
    "index-length": np.int64,
    "index-sources": bool,
    "paths-blob": np.uint8,
    "paths-offsets": np.int64,
}
SAMPLE_DTYPE = "<i2"  # the shards' samples: little-endian int16


def shard_path(store_dir: Path, shard: int) -> Path:
    return store_dir / f"shard-{shard:05d}.i16"


def save_array(path: Path, array: np.ndarray) -> None:
    """An index array as a ``.npy`` file, replaced atomically."""
    write_atomically(path, lambda handle: np.save(handle, array))


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Quantise float audio in [-1, 1] (clipping beyond) to int16; inverse of ``to_float``."""
    return np.clip(np.rint(audio * 32768.0), -32768, 32767).astype(np.int16)


def to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM to float32 in [-1, 1), the scale every model in mucon sees."""
    audio = np.asarray(pcm).astype(np.float32)
    audio *= np.float32(1 / 32768)
    return audio
