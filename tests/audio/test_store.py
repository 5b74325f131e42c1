"""AudioStore: reading crops, stems and paths from a prepared store; refusing a damaged one."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tracemalloc

import numpy as np
import pytest

from mucon.audio import store_writer
from mucon.audio.store import AudioStore
from mucon.audio.store_format import FORMAT_NAME, FORMAT_VERSION
from mucon.data.layouts import SOURCE_TYPES


def test_store_without_metadata_has_no_labels(reference_store):
    assert AudioStore(reference_store).labels is None


def test_random_starts_are_valid_and_reproducible_with_a_seeded_rng(reference_store):
    store = AudioStore(reference_store)
    indices = np.arange(len(store)).repeat(50)
    n = 20000  # longer than some items (1.2 s = 19200 samples) and shorter than others
    starts = store.random_starts(indices, n, np.random.default_rng(3))
    np.testing.assert_array_equal(starts, store.random_starts(indices, n, np.random.default_rng(3)))
    last_valid = np.maximum(store.lengths[indices] - n, 0)
    assert (starts >= 0).all() and (starts <= last_valid).all()
    assert (starts[last_valid > 1000] > 0).any()


def test_read_crops_match_single_reads_and_zero_pad_short_items(reference_store):
    store = AudioStore(reference_store)
    indices = np.arange(len(store))
    n = int(store.lengths.max()) + 100
    crops = store.read_crops(indices, np.zeros(len(store), np.int64), n)
    assert crops.shape == (len(store), n) and crops.dtype == np.int16
    for i in indices:
        length = int(store.lengths[i])
        np.testing.assert_array_equal(crops[i], store.read(i, 0, n))
        assert not crops[i, length:].any() and crops[i, :length].any()
    np.testing.assert_array_equal(store.read(0, 100, 50), crops[0, 100:150])
    assert not store.read(0, int(store.lengths[0]) + 5, 10).any()


def test_store_pickles_as_its_path_and_reads_the_same_after(reference_store):
    store = AudioStore(reference_store)
    before = store.read_crops([0, 5], [10, 20], 1000)  # opens shard maps, which must not be pickled
    payload = pickle.dumps(store)
    assert len(payload) < 1000
    np.testing.assert_array_equal(pickle.loads(payload).read_crops([0, 5], [10, 20], 1000), before)


@pytest.mark.parametrize("damage", ["cut short", "missing"])
def test_a_store_whose_shard_lost_data_is_refused_when_it_opens_naming_the_shard_and_its_sizes(
    reference_store, tmp_path, damage
):
    store_dir = tmp_path / "store"
    shutil.copytree(reference_store, store_dir)
    shard = sorted(store_dir.glob("shard-*.i16"))[1]
    size = shard.stat().st_size
    if damage == "missing":
        shard.unlink()
    else:
        os.truncate(shard, size // 2)
    found = "missing" if damage == "missing" else f"{size // 2} bytes"
    with pytest.raises(ValueError, match=f"^{shard}: {found}, but the store's index needs {size} bytes"):
        AudioStore(store_dir)


def test_only_a_few_shards_stay_open_at_once(reference_store):
    store = AudioStore(reference_store, max_open_shards=2)
    for i in range(len(store)):
        store.read(i, 0, 10)
    assert len(store._open_shards) == 2


def test_opening_and_reading_a_million_item_multitrack_store_allocates_no_per_item_objects(tmp_path):
    n_items, shard_samples = 1_000_000, 200_000
    rng = np.random.default_rng(0)
    lengths = rng.integers(500, 10_000, n_items)
    offsets = rng.integers(0, shard_samples - 5 * lengths)  # room for the mixture and four stems
    has_source = rng.random((n_items, 4)) < 0.7
    paths = np.frombuffer(b"".join(b"track-%07d.flac" % i for i in range(n_items)), np.uint8)
    path_offsets = np.arange(n_items + 1, dtype=np.int64) * len(b"track-0000000.flac")
    store_writer._write_index(tmp_path, np.zeros(n_items), offsets, lengths, has_source, paths, path_offsets)
    (tmp_path / "shard-00000.i16").write_bytes(rng.integers(-3000, 3000, shard_samples, dtype=np.int16).tobytes())
    info = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "sample_rate": 22050,
            "sources": list(SOURCE_TYPES)}
    (tmp_path / "store.json").write_text(json.dumps(info))

    tracemalloc.start()
    store = AudioStore(tmp_path)
    indices = np.random.default_rng(1).integers(0, len(store), 256)
    starts = store.random_starts(indices, 59049, np.random.default_rng(2))
    crops = store.read_crops(indices, starts, 59049)
    sources = [store.read_sources(i, start, 59049, store.source_names) for i, start in zip(indices, starts)]
    activity = [store.source_activity(i, start, 59049, store.source_names) for i, start in zip(indices, starts)]
    last_path = store.path(n_items - 1)
    total_seconds = store.lengths.sum() / store.sample_rate
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert len(store) == n_items and last_path == "track-0999999.flac" and total_seconds > 0
    assert crops.shape == (256, 59049) and store.has_source.shape == (n_items, 4)
    assert all(((act > 0) == store.has_source[i]).all() for i, act in zip(indices, activity))
    # The batches themselves are 30 + 120 MB of int16; everything else (a million-item index) must stay on disk.
    assert peak - crops.nbytes - sum(s.nbytes for s in sources) < 4 * 2**20
