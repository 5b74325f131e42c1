"""Multitrack stores: stems kept next to their mixture, sample-aligned, read at the same window.

The read side is the contract the data module codes against: ``source_names``, ``has_source``,
``read_sources`` and ``source_activity``.
"""

from __future__ import annotations

import csv
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf

from mucon.audio.io import AudioDecodeError
from mucon.audio.store import AudioStore
from mucon.audio.store_writer import prepare_store
from mucon.cli import main
from multitrack import MUSDB_RATE, write_musdb_track, write_pcm, write_slakh_track

RATE = 16000


def prepare(audio_dir, store_dir, **options):
    return prepare_store(audio_dir, store_dir, RATE, num_workers=0, progress=False, **options)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_mixture_is_the_sum_of_its_stems(store: AudioStore, i: int, start: int, n: int) -> None:
    """Each of the mixture and its k stems was rounded to int16 once: they agree to within (k + 1) / 2 steps."""
    stems = store.read_sources(i, start, n, store.source_names).astype(np.int64)
    k = int(store.has_source[i].sum())
    difference = np.abs(store.read(i, start, n).astype(np.int64) - stems.sum(axis=0))
    assert difference.max() <= (k + 1) / 2 + 1e-9, difference.max()


@pytest.fixture(scope="module")
def musdb_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb") / "musdb18hq"
    write_musdb_track(root, "train", "A Classic Education - NightOwl", seconds=2.0, seed=0)
    write_musdb_track(root, "train", "Actions - Devil's Words", seconds=2.0, seed=10, silent_first_half="vocals")
    write_musdb_track(root, "test", "Al James - Schoolboy Facination", seconds=1.5, seed=20)
    report = prepare(root, root.parent / "store")
    assert report.kept == 3 and report.stems == {"vocals": 3, "drums": 3, "bass": 3, "other": 3}
    return AudioStore(root.parent / "store")


@pytest.fixture(scope="module")
def slakh_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("slakh") / "slakh2100"
    write_slakh_track(root, "train", 1, seconds=2.0, seed=0)
    write_slakh_track(root, "validation", 2, seconds=1.5, seed=30)
    prepare(root, root.parent / "store")
    return AudioStore(root.parent / "store")


def test_musdb_store_holds_the_four_sources_and_the_release_split(musdb_store):
    assert musdb_store.source_names == ("vocals", "drums", "bass", "other")
    assert musdb_store.has_source.dtype == bool and musdb_store.has_source.all()
    assert musdb_store.has_source.shape == (3, 4)
    assert list(musdb_store.labels["split"]) == ["test", "train", "train"]
    assert musdb_store.path(1) == "train/A Classic Education - NightOwl/mixture.wav"


@pytest.mark.parametrize("start", [0, 777, 20_000, 31_000])
def test_a_musdb_mixture_crop_is_the_sum_of_its_stem_crops_at_the_same_offset(musdb_store, start):
    for i in range(len(musdb_store)):
        assert_mixture_is_the_sum_of_its_stems(musdb_store, i, start, 4000)


def test_a_slakh_mixture_crop_is_the_sum_of_its_stem_crops_with_instruments_summed_per_type(slakh_store):
    assert slakh_store.source_names == ("vocals", "drums", "bass", "other")
    assert slakh_store.has_source.all()
    assert list(slakh_store.labels["split"]) == ["train", "validation"]
    for i in range(len(slakh_store)):
        for start in (0, 5000, 15_000):
            assert_mixture_is_the_sum_of_its_stems(slakh_store, i, start, 6000)


def test_source_activity_is_zero_for_a_window_where_the_stem_is_silent_and_positive_where_it_plays(musdb_store):
    i = [musdb_store.path(j) for j in range(len(musdb_store))].index("train/Actions - Devil's Words/mixture.wav")
    half = int(musdb_store.lengths[i]) // 2
    quiet, loud = (musdb_store.source_activity(i, start, 8000, ["vocals", "bass"]) for start in (half - 9000, half + 1000))
    assert quiet.dtype == np.float32 and quiet[0] == 0.0 and quiet[1] > 0.01
    assert loud[0] > 0.01 and loud[1] > 0.01
    expected = np.abs(musdb_store.read_sources(i, half + 1000, 8000, ["vocals"])[0] / 32768).mean()
    assert loud[0] == pytest.approx(expected, rel=1e-6)


def test_source_activity_averages_only_over_samples_before_the_items_end(musdb_store):
    length = int(musdb_store.lengths[0])
    tail = musdb_store.read_sources(0, length - 100, 100, ["drums"])[0]
    activity = musdb_store.source_activity(0, length - 100, 5000, ["drums"])[0]
    assert activity == pytest.approx(np.abs(tail / 32768).mean(), rel=1e-6)
    assert musdb_store.source_activity(0, length + 10, 100, ["drums"])[0] == 0.0


def test_read_sources_pads_past_the_end_and_follows_the_order_of_the_names_asked(musdb_store):
    length = int(musdb_store.lengths[0])
    both = musdb_store.read_sources(0, length - 50, 200, ["other", "bass"])
    assert both.shape == (2, 200) and both.dtype == np.int16 and not both[:, 50:].any()
    np.testing.assert_array_equal(both[::-1], musdb_store.read_sources(0, length - 50, 200, ["bass", "other"]))


def test_unknown_source_names_raise_naming_the_store_and_its_sources(musdb_store, tmp_path):
    with pytest.raises(ValueError, match="guitar.*vocals, drums, bass, other"):
        musdb_store.read_sources(0, 0, 10, ["guitar"])
    with pytest.raises(ValueError, match=str(musdb_store.store_dir)):
        musdb_store.source_activity(0, 0, 10, ["guitar"])


def test_a_multitrack_store_pickles_as_its_path_and_reads_the_same_stems(musdb_store):
    before = musdb_store.read_sources(2, 100, 500, musdb_store.source_names)
    payload = pickle.dumps(musdb_store)
    assert len(payload) < 1000
    np.testing.assert_array_equal(pickle.loads(payload).read_sources(2, 100, 500, musdb_store.source_names), before)


def test_a_mixture_only_store_has_no_sources(tmp_path):
    sf.write(tmp_path / "a.wav", np.sin(np.arange(20000) / 10).astype(np.float32) * 0.3, RATE)
    prepare(tmp_path, tmp_path / "store")
    store = AudioStore(tmp_path / "store")
    assert store.source_names == () and store.has_source.shape == (1, 0)
    assert store.read_sources(0, 0, 10, []).shape == (0, 10)
    with pytest.raises(ValueError, match="mixtures only"):
        store.read_sources(0, 0, 10, ["drums"])


def test_a_silent_stem_and_a_stem_type_absent_from_every_item_cost_no_disk(tmp_path):
    root = tmp_path / "musdb"
    write_musdb_track(root, "train", "A - One", seconds=1.5, seed=0)
    write_musdb_track(root, "train", "B - Two", seconds=1.5, seed=5)
    for track in ("A - One", "B - Two"):
        sf.write(root / "train" / track / "bass.wav", np.zeros((int(1.5 * MUSDB_RATE), 2), np.int16), MUSDB_RATE,
                 subtype="PCM_16")
    write_pcm(root / "train" / "B - Two" / "vocals.wav", np.zeros((int(1.5 * MUSDB_RATE), 2), np.int16), MUSDB_RATE)
    report = prepare(root, tmp_path / "store")
    store = AudioStore(tmp_path / "store")
    assert store.source_names == ("vocals", "drums", "other")
    assert store.has_source.tolist() == [[True, True, True], [False, True, True]]
    assert report.stems == {"vocals": 1, "drums": 2, "other": 2}
    shard_bytes = sum(path.stat().st_size for path in (tmp_path / "store").glob("shard-*.i16"))
    assert shard_bytes == 2 * int(store.lengths[0]) * ((1 + 3) + (1 + 2))  # int16: mixture + stored stems, per item
    assert not store.read_sources(1, 0, 1000, ["vocals"]).any()


@pytest.fixture
def broken_musdb(tmp_path):
    """One good track, and one each with a missing, a shorter and a resampled stem."""
    root = tmp_path / "musdb"
    for name in ("A - Good", "B - Missing", "C - Short", "D - Rate"):
        write_musdb_track(root, "train", name, seconds=1.2, seed=len(name))
    (root / "train" / "B - Missing" / "vocals.wav").unlink()
    short = sf.read(root / "train" / "C - Short" / "drums.wav", dtype="int16")[0][:20000]
    write_pcm(root / "train" / "C - Short" / "drums.wav", short, MUSDB_RATE)
    bass = sf.read(root / "train" / "D - Rate" / "bass.wav", dtype="int16")[0]
    write_pcm(root / "train" / "D - Rate" / "bass.wav", bass, 48000)
    return root


def test_missing_short_and_resampled_stems_skip_their_track_listed_with_track_and_stem(broken_musdb, tmp_path):
    report = prepare(broken_musdb, tmp_path / "store")
    assert report.kept == 1
    assert report.skipped_by_reason == {"missing stem": 1, "stem length": 1, "stem sample rate": 1}
    rows = {row["path"]: row for row in read_csv(tmp_path / "store" / "skipped.csv")}
    assert rows["train/B - Missing/mixture.wav"]["reason"] == "missing stem"
    assert "vocals" in rows["train/B - Missing/mixture.wav"]["detail"]
    assert "train/B - Missing/vocals.wav" in rows["train/B - Missing/mixture.wav"]["detail"]
    assert rows["train/C - Short/mixture.wav"]["reason"] == "stem length"
    assert "train/C - Short/drums.wav" in rows["train/C - Short/mixture.wav"]["detail"]
    assert rows["train/D - Rate/mixture.wav"]["reason"] == "stem sample rate"
    assert "train/D - Rate/bass.wav" in rows["train/D - Rate/mixture.wav"]["detail"]
    assert "48000 Hz" in rows["train/D - Rate/mixture.wav"]["detail"]


def test_strict_stops_at_the_first_bad_stem_naming_track_and_stem(broken_musdb, tmp_path, capsys):
    with pytest.raises(AudioDecodeError) as caught:
        prepare(broken_musdb, tmp_path / "store", strict=True)
    assert "B - Missing/mixture.wav" in str(caught.value) and "vocals.wav" in str(caught.value)
    code = main(["prepare", str(broken_musdb), str(tmp_path / "other-store"), "--sample-rate", "16000", "--strict",
                 "--quiet", "--workers", "1"])
    error = capsys.readouterr().err
    assert code == 1 and "B - Missing" in error and "vocals" in error and "missing stem" in error


def test_split_keeps_only_the_requested_release_splits(tmp_path):
    root = tmp_path / "slakh"
    write_slakh_track(root, "train", 1, seconds=1.2)
    write_slakh_track(root, "test", 2, seconds=1.2, seed=3)
    assert main(["prepare", str(root), str(tmp_path / "store"), "--sample-rate", "16000", "--split", "train",
                 "--quiet", "--workers", "1"]) == 0
    store = AudioStore(tmp_path / "store")
    assert [store.path(i) for i in range(len(store))] == ["train/Track00001/mix.flac"]
    assert store.info["splits"] == ["train"] and store.info["layout"] == "slakh2100"


def test_worker_processes_produce_the_same_multitrack_store(tmp_path):
    root = tmp_path / "musdb"
    write_musdb_track(root, "train", "A - One", seconds=1.2, seed=0)
    write_musdb_track(root, "test", "B - Two", seconds=1.2, seed=1)
    prepare(root, tmp_path / "in-process")
    prepare_store(root, tmp_path / "workers", RATE, num_workers=2, progress=False)
    for name in ("shard-00000.i16", "index-sources.npy", "index-offset.npy", "labels.csv"):
        assert (tmp_path / "in-process" / name).read_bytes() == (tmp_path / "workers" / name).read_bytes()


def whole_rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pcm.astype(np.float64) / 32768) ** 2)))


def test_the_store_holds_the_rms_of_each_whole_mixture_and_stem(musdb_store):
    levels = musdb_store.levels
    assert levels.shape == (3, 5) and levels.dtype == np.float32
    for i in range(3):
        n = int(musdb_store.lengths[i])
        assert levels[i, 0] == pytest.approx(whole_rms(musdb_store.read(i, 0, n)), rel=1e-5)
        for column, stem in enumerate(musdb_store.read_sources(i, 0, n, musdb_store.source_names), 1):
            assert levels[i, column] == pytest.approx(whole_rms(stem), rel=1e-5)
    assert (musdb_store.store_dir / "index-rms.npy").exists()  # measured when the store was prepared


def test_a_store_prepared_without_levels_measures_them_once_on_first_use(musdb_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(musdb_store.store_dir, copy)
    (copy / "index-rms.npy").unlink()
    np.testing.assert_array_equal(AudioStore(copy).levels, musdb_store.levels)
    assert (copy / "index-rms.npy").exists()  # saved next to the index: the next open reads it
