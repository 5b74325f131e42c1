"""prepare_store: what it keeps and skips, how it resumes after a crash, what it refuses."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mucon.audio import store_decode, store_writer
from mucon.audio.io import AudioDecodeError, load_audio
from mucon.audio.store import AudioStore
from mucon.audio.store_format import to_float
from mucon.audio.store_writer import prepare_store

from .conftest import (BAD_FILES, GOOD_FILES, SAMPLE_RATE, build_mixed_folder, music_like, prepare, write_good_file,
                       write_truncated_mp3)

GOOD_IN_ORDER = sorted(GOOD_FILES)


def store_files(store_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(store_dir.iterdir())}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_prepare_keeps_good_files_and_lists_each_bad_file_with_its_reason(mixed_audio_dir, reference_store):
    report = prepare(mixed_audio_dir, reference_store, shard_bytes=100_000)  # finished: returns its report
    assert report.kept == len(GOOD_FILES) and report.skipped == len(BAD_FILES)
    assert report.skipped_by_reason == {reason: 1 for reason in BAD_FILES.values()}
    skipped = {row["path"]: row["reason"] for row in read_csv(reference_store / "skipped.csv")}
    assert skipped == BAD_FILES
    store = AudioStore(reference_store)
    assert len(store) == len(GOOD_FILES) and store.sample_rate == SAMPLE_RATE
    assert [store.path(i) for i in range(len(store))] == GOOD_IN_ORDER
    assert report.seconds == pytest.approx(store.lengths.sum() / SAMPLE_RATE)
    info = json.loads((reference_store / "store.json").read_text())
    assert info["num_items"] == len(GOOD_FILES) and info["num_shards"] > 1
    assert "kept 6 files" in report.summary() and "1 corrupt" in report.summary()


def test_prepared_audio_equals_load_audio_within_int16_rounding(mixed_audio_dir, reference_store):
    store = AudioStore(reference_store)
    for i in range(len(store)):
        decoded = load_audio(mixed_audio_dir / store.path(i), SAMPLE_RATE)
        assert store.lengths[i] == len(decoded)
        stored = to_float(store.read(i, 0, len(decoded)))
        np.testing.assert_allclose(stored, decoded, rtol=0, atol=0.5 / 32768 + 1e-7)


def test_no_prepare_leftovers_remain_in_a_finished_store(reference_store):
    names = {path.name for path in reference_store.iterdir()}
    assert not {"progress.json", "journal-items.i64", "journal-paths.bin"} & names
    assert not [name for name in names if name.endswith(".tmp")]


def test_rerunning_a_finished_store_is_a_no_op(mixed_audio_dir, tmp_path):
    store_dir = tmp_path / "store"
    first = prepare(mixed_audio_dir, store_dir)
    before = {path.name: path.stat().st_mtime_ns for path in store_dir.iterdir()}
    assert prepare(mixed_audio_dir, store_dir) == first
    assert {path.name: path.stat().st_mtime_ns for path in store_dir.iterdir()} == before


def test_rerunning_with_other_settings_refuses_to_mix_stores(mixed_audio_dir, tmp_path):
    prepare(mixed_audio_dir, tmp_path / "store")
    with pytest.raises(ValueError, match="other inputs or settings"):
        prepare_store(mixed_audio_dir, tmp_path / "store", 22050, num_workers=0, progress=False)


@pytest.mark.parametrize("change", ["new audio", "same size, touched"])
def test_rerunning_after_an_input_changed_under_its_name_refuses_instead_of_keeping_the_stale_audio(tmp_path, change):
    write_good_file(tmp_path / "audio" / "a.wav", SAMPLE_RATE, 1, 1.5, {}, seed=1)
    write_good_file(tmp_path / "audio" / "b.wav", SAMPLE_RATE, 1, 1.5, {}, seed=2)
    prepare(tmp_path / "audio", tmp_path / "store")
    if change == "new audio":
        write_good_file(tmp_path / "audio" / "a.wav", SAMPLE_RATE, 1, 2.5, {}, seed=3)
    else:
        os.utime(tmp_path / "audio" / "a.wav", ns=(0, 10**18))
    with pytest.raises(ValueError, match="other inputs or settings .a file added, removed or changed since"):
        prepare(tmp_path / "audio", tmp_path / "store")


def test_strict_raises_naming_the_first_bad_file_and_keeps_what_came_before(mixed_audio_dir, reference_store, tmp_path):
    store_dir = tmp_path / "store"
    with pytest.raises(AudioDecodeError) as caught:
        prepare(mixed_audio_dir, store_dir, strict=True, shard_bytes=100_000)
    assert caught.value.path == str(mixed_audio_dir / "bad_corrupt.flac") and caught.value.reason == "corrupt"
    committed = json.loads((store_dir / "progress.json").read_text())
    assert committed["kept"] == 2  # a_ and b_ sort before bad_corrupt
    prepare(mixed_audio_dir, store_dir, shard_bytes=100_000)
    assert store_files(store_dir) == store_files(reference_store)


@pytest.mark.parametrize("interrupt_at_call", [1, 3, 5, 9, 11])
def test_resume_after_interrupt_equals_an_uninterrupted_run(
    mixed_audio_dir, reference_store, tmp_path, monkeypatch, interrupt_at_call
):
    monkeypatch.setattr(store_writer, "_COMMIT_EVERY_FILES", 2)
    decode = store_decode._decode_item
    calls = []

    def decode_then_interrupt(*args):
        calls.append(args)
        if len(calls) == interrupt_at_call:
            raise KeyboardInterrupt
        return decode(*args)

    monkeypatch.setattr(store_decode, "_decode_item", decode_then_interrupt)
    store_dir = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        prepare(mixed_audio_dir, store_dir, shard_bytes=100_000)
    # A killed writer leaves half-written tails beyond the last commit, in the shard being
    # written and in shards begun after it; resume must cut them off.
    appended_files = ["journal-items.i64", "journal-paths.bin", "skipped.csv", *sorted(store_dir.glob("shard-*"))[-1:]]
    for name in appended_files:
        with open(store_dir / name, "ab") as handle:
            handle.write(b"\x01half-written")
    (store_dir / "shard-00099.i16").write_bytes(b"stray shard begun after the commit")
    monkeypatch.setattr(store_decode, "_decode_item", decode)
    prepare(mixed_audio_dir, store_dir, shard_bytes=100_000)
    assert store_files(store_dir) == store_files(reference_store)


def test_resume_after_kill_9_mid_run_equals_an_uninterrupted_run(mixed_audio_dir, reference_store, tmp_path):
    store_dir = tmp_path / "store"
    killed_run = textwrap.dedent(
        f"""
        import os, signal
        from mucon.audio import store_decode, store_writer
        store_writer._COMMIT_EVERY_FILES = 3
        decode, calls = store_decode._decode_item, []
        def decode_then_die(*args):
            calls.append(args)
            if len(calls) == 8:
                os.kill(os.getpid(), signal.SIGKILL)
            return decode(*args)
        store_decode._decode_item = decode_then_die
        store_writer.prepare_store({str(mixed_audio_dir)!r}, {str(store_dir)!r}, {SAMPLE_RATE}, num_workers=0,
                                   progress=False, shard_bytes=100_000)
        """
    )
    result = subprocess.run([sys.executable, "-c", killed_run], capture_output=True)
    assert result.returncode == -9, result.stderr.decode()
    assert json.loads((store_dir / "progress.json").read_text())["inputs_done"] == 6
    prepare(mixed_audio_dir, store_dir, shard_bytes=100_000)
    assert store_files(store_dir) == store_files(reference_store)


@pytest.mark.parametrize("crashing_step", ["_write_index", "_remove_journals"])
def test_resume_after_a_crash_while_finishing_completes_the_store(
    mixed_audio_dir, reference_store, tmp_path, monkeypatch, crashing_step
):
    """Crashes just before store.json (index written) and just after it (journals not yet removed)."""
    step = getattr(store_writer, crashing_step)

    def step_then_crash(*args):
        step(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(store_writer, crashing_step, step_then_crash)
    store_dir = tmp_path / "store"
    with pytest.raises(KeyboardInterrupt):
        prepare(mixed_audio_dir, store_dir, shard_bytes=100_000)
    monkeypatch.undo()
    prepare(mixed_audio_dir, store_dir, shard_bytes=100_000)
    assert store_files(store_dir) == store_files(reference_store)


def test_worker_processes_produce_the_same_store_as_decoding_in_process(mixed_audio_dir, reference_store, tmp_path):
    prepare_store(mixed_audio_dir, tmp_path / "store", SAMPLE_RATE, num_workers=2, progress=False, shard_bytes=100_000)
    assert store_files(tmp_path / "store") == store_files(reference_store)


def test_metadata_rows_become_labels_in_store_order_for_kept_items_only(tmp_path):
    audio_dir = build_mixed_folder(tmp_path / "audio")
    rows = [
        ("nested/f_48k_mono.AIFF", "jazz", "test"),
        ("bad_text.wav", "rock", "train"),
        ("a_16k_mono.wav", "pop", "train"),
        ("missing.wav", "folk", "valid"),
        ("c_44k_mono.ogg", "rock, indie", "valid"),
    ]
    with open(audio_dir / "metadata.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("genre", "path", "split"), *[(g, p, s) for p, g, s in rows]])
    report = prepare(audio_dir, tmp_path / "store")
    assert (report.kept, report.skipped_by_reason) == (3, {"not audio": 1, "unreadable": 1})
    store = AudioStore(tmp_path / "store")
    assert [store.path(i) for i in range(len(store))] == ["nested/f_48k_mono.AIFF", "a_16k_mono.wav", "c_44k_mono.ogg"]
    labels_csv = read_csv(tmp_path / "store" / "labels.csv")
    assert list(labels_csv[0]) == ["path", "genre", "split"]
    assert [row["path"] for row in labels_csv] == [store.path(i) for i in range(len(store))]
    assert list(store.labels["genre"]) == ["jazz", "pop", "rock, indie"]
    assert list(store.labels["split"]) == ["test", "train", "valid"]


def test_metadata_rows_pointing_outside_the_folder_are_skipped_and_listed(tmp_path):
    audio_dir = build_mixed_folder(tmp_path / "audio")
    write_good_file(tmp_path / "outside.wav", SAMPLE_RATE, 1, 1.5, {}, seed=1)
    rows = ["a_16k_mono.wav", "../outside.wav", str(tmp_path / "outside.wav"), "nested/../../outside.wav"]
    (audio_dir / "metadata.csv").write_text("path\n" + "\n".join(rows) + "\n")
    report = prepare(audio_dir, tmp_path / "store")
    assert (report.kept, report.skipped_by_reason) == (1, {"outside the folder": 3})
    assert [row["path"] for row in read_csv(tmp_path / "store" / "skipped.csv")] == rows[1:]


def test_a_file_listed_twice_in_metadata_is_kept_once_with_its_first_labels_and_the_repeat_listed(tmp_path):
    audio_dir = build_mixed_folder(tmp_path / "audio")
    (audio_dir / "metadata.csv").write_text("path,genre\na_16k_mono.wav,rock\nc_44k_mono.ogg,pop\n"
                                            "./a_16k_mono.wav,jazz\n")
    report = prepare(audio_dir, tmp_path / "store")
    assert (report.kept, report.skipped_by_reason) == (2, {"duplicate": 1})
    assert list(AudioStore(tmp_path / "store").labels["genre"]) == ["rock", "pop"]
    [skipped] = read_csv(tmp_path / "store" / "skipped.csv")
    assert skipped["path"] == "./a_16k_mono.wav" and "genre 'rock', here 'jazz'" in skipped["detail"]


def test_prepare_scales_a_file_peaking_above_one_as_load_audio_does_and_lists_it(tmp_path):
    signal = music_like(SAMPLE_RATE, 1, 1.5, seed=5)[:, 0]
    sf.write(tmp_path / "loud.wav", 15.0 * signal / np.abs(signal).max(), SAMPLE_RATE, subtype="FLOAT")
    sf.write(tmp_path / "normal.wav", signal, SAMPLE_RATE, subtype="FLOAT")
    report = prepare(tmp_path, tmp_path / "store")
    store = AudioStore(tmp_path / "store")
    decoded = load_audio(tmp_path / "loud.wav", SAMPLE_RATE)
    np.testing.assert_allclose(to_float(store.read(0, 0, len(decoded))), decoded, rtol=0, atol=0.5 / 32768 + 1e-7)
    assert np.mean(np.abs(to_float(store.read(0, 0, len(decoded)))) > 0.999) < 0.001  # not clipped
    assert report.normalised == 1 and "scaled 1 down to peak 1" in report.summary()
    assert [(row["path"], float(row["peak"])) for row in read_csv(tmp_path / "store" / "normalised.csv")] == [
        ("loud.wav", pytest.approx(15.0, rel=1e-4))]


def test_prepare_keeps_a_truncated_mp3_as_far_as_its_data_goes_and_lists_it(tmp_path):
    path = write_truncated_mp3(tmp_path / "audio" / "cut.mp3", SAMPLE_RATE, 4.0)
    held, _ = sf.read(path, dtype="float32")
    report = prepare(tmp_path / "audio", tmp_path / "store")
    store = AudioStore(tmp_path / "store")
    assert (int(store.lengths[0]), report.truncated) == (len(held), 1)
    np.testing.assert_allclose(to_float(store.read(0, 0, len(held))), held, atol=1 / 32768)
    [row] = read_csv(tmp_path / "store" / "truncated.csv")
    assert row["path"] == "cut.mp3" and float(row["header_seconds"]) == 4.0 and "truncated.csv" in report.summary()


def test_prepare_keeps_a_file_whose_name_is_not_utf8_under_its_own_name(tmp_path):
    name = os.fsdecode(b"m\xfcsik.wav")  # latin-1 bytes, not valid utf-8
    sf.write(os.fsencode(tmp_path / name), music_like(SAMPLE_RATE, 1, 1.2, seed=1), SAMPLE_RATE)
    report = prepare(tmp_path, tmp_path / "store")
    assert report.kept == 1 and report.skipped == 0
    assert AudioStore(tmp_path / "store").path(0) == name


@pytest.mark.parametrize("settings", [{"sample_rate": 0}, {"sample_rate": -16000}, {"sample_rate": 16000.5},
                                      {"min_seconds": -1.0}, {"num_workers": -2}])
def test_bad_settings_are_refused_before_anything_is_written(mixed_audio_dir, tmp_path, settings):
    options = {"sample_rate": SAMPLE_RATE, **settings}
    with pytest.raises(ValueError):
        prepare_store(mixed_audio_dir, tmp_path / "store", options.pop("sample_rate"), progress=False, **options)
    assert not (tmp_path / "store").exists()
    prepare(mixed_audio_dir, tmp_path / "store")  # the corrected command is not blocked


def test_an_input_that_is_not_a_folder_is_refused_before_anything_is_written(mixed_audio_dir, tmp_path):
    with pytest.raises(NotADirectoryError):
        prepare(mixed_audio_dir / "a_16k_mono.wav", tmp_path / "store")
    assert not (tmp_path / "store").exists()


def test_prepare_memory_stays_flat_in_the_files_length(tmp_path):
    """Five minutes of audio decode to 19 MB of float32; the streamed prepare holds a few blocks of it."""
    seconds = 300
    with sf.SoundFile(tmp_path / "long.flac", "w", SAMPLE_RATE, 1, "PCM_16") as long_file:
        for minute in range(seconds // 60):
            long_file.write(music_like(SAMPLE_RATE, 1, 60.0, seed=minute))
    tracemalloc.start()
    report = prepare(tmp_path, tmp_path / "store")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.kept == 1 and report.seconds == pytest.approx(seconds)
    assert peak < 4 * 2**20, f"{peak / 2**20:.1f} MB"


def test_prepare_follows_linked_folders_and_lists_unreadable_ones(tmp_path, make_unreadable):
    audio = tmp_path / "audio"
    write_good_file(audio / "own" / "a.wav", SAMPLE_RATE, 1, 1.2, {}, seed=1)
    write_good_file(tmp_path / "elsewhere" / "b.wav", SAMPLE_RATE, 1, 1.2, {}, seed=2)
    (audio / "linked").symlink_to(tmp_path / "elsewhere")
    (audio / "own" / "loop").symlink_to(audio)
    (audio / "locked").mkdir()
    make_unreadable("locked")
    report = prepare(audio, tmp_path / "store")
    store = AudioStore(tmp_path / "store")
    assert [store.path(i) for i in range(len(store))] == ["linked/b.wav", "own/a.wav"]
    assert report.skipped_by_reason == {"unreadable": 1}
    assert [(row["path"], row["reason"]) for row in read_csv(tmp_path / "store" / "skipped.csv")] == [("locked", "unreadable")]
