"""`mucon separate`: sources computed once, written so that `mucon prepare` stores them next to the mixture."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from mucon.audio import separation
from mucon.audio.io import load_audio
from mucon.audio.separation import HPSSSeparator, separate_folder
from mucon.audio.store import AudioStore
from mucon.audio.store_writer import prepare_store
from mucon.cli import main

RATE = 16000


def clicks_and_tone(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(percussive, harmonic): short noise bursts every 0.25 s, and a steady two-note tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    clicks = np.where((t % 0.25) < 0.004, rng.uniform(-0.6, 0.6, len(t)), 0.0)
    tone = 0.2 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 495 * t)
    return clicks.astype(np.float32), tone.astype(np.float32)


def separated(separator: HPSSSeparator, audio: np.ndarray) -> np.ndarray:
    [(_, stems)] = list(separator.separate([("x", audio[None])]))
    return stems[:, 0]


def test_hpss_puts_clicks_in_drums_and_a_steady_tone_in_other_and_they_sum_to_the_mixture():
    clicks, tone = clicks_and_tone(3.0)
    drums, other = separated(HPSSSeparator(RATE), clicks + tone)
    np.testing.assert_allclose(drums + other, clicks + tone, atol=1e-6)

    def share(part: np.ndarray, reference: np.ndarray) -> float:
        """How much of ``reference`` (by energy) ``part`` holds: its projection on it."""
        return float(np.dot(part, reference) / np.dot(reference, reference))

    assert share(drums, clicks) > 0.6 and share(other, tone) > 0.9
    assert share(drums, tone) < 0.1


def test_hpss_output_does_not_depend_on_how_tracks_are_cut_into_segments_and_batched():
    clicks, tone = clicks_and_tone(2.3, seed=1)
    whole = separated(HPSSSeparator(RATE, segment_seconds=10.0, batch_size=1), clicks + tone)
    pieces = separated(HPSSSeparator(RATE, segment_seconds=0.4, batch_size=3), clicks + tone)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


@pytest.fixture
def mixtures(tmp_path):
    """Three mixtures with labels and a split, and a corrupt file listed in the table too."""
    folder = tmp_path / "mixtures"
    (folder / "set").mkdir(parents=True)
    rows = [("path", "genre", "split")]
    for i, split in enumerate(["train", "train", "test"]):
        clicks, tone = clicks_and_tone(1.5 + 0.3 * i, seed=i)
        sf.write(folder / "set" / f"song{i}.flac", np.stack([clicks + tone, tone], axis=1), 22050)
        rows.append((f"set/song{i}.flac", f"genre{i}", split))
    (folder / "broken.wav").write_bytes(b"RIFF" + b"\0" * 40)
    rows.append(("broken.wav", "x", "train"))
    with open(folder / "metadata.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return folder


def test_separated_folder_is_read_by_prepare_with_aligned_stems_and_the_inputs_labels(mixtures, tmp_path):
    report = separate_folder(mixtures, tmp_path / "out", RATE, progress=False)
    seconds = sum(sf.info(path).duration for path in mixtures.glob("set/*.flac"))
    assert (report.separated, report.failed) == (3, 1) and report.seconds_of_audio == pytest.approx(seconds, abs=1e-3)
    assert json.loads((tmp_path / "out" / "separated.json").read_text())["sources"] == ["drums", "other"]
    prepare_store(tmp_path / "out", tmp_path / "store", RATE, num_workers=0, progress=False)
    store = AudioStore(tmp_path / "store")
    assert store.info["layout"] == "separated" and store.source_names == ("drums", "other")
    assert list(store.labels["original_path"]) == ["set/song0.flac", "set/song1.flac", "set/song2.flac"]
    assert list(store.labels["genre"]) == ["genre0", "genre1", "genre2"]
    for i in range(len(store)):
        length = int(store.lengths[i])
        mixture = store.read(i, 0, length).astype(np.int64)
        assert np.abs(mixture - store.read_sources(i, 0, length, store.source_names).astype(np.int64).sum(0)).max() <= 1
        original = load_audio(mixtures / store.labels["original_path"][i], RATE)
        np.testing.assert_allclose(mixture / 32768, original, atol=1 / 32768)
    skipped = list(csv.DictReader(open(tmp_path / "out" / "skipped.csv")))
    assert [(row["path"], row["reason"]) for row in skipped] == [("broken.wav", "not audio")]


def test_separate_writes_only_under_out_and_lists_rows_pointing_outside_the_input_folder(mixtures, tmp_path):
    sf.write(tmp_path / "secret.wav", clicks_and_tone(1.0)[1], 22050)
    (mixtures / "set" / "song0").mkdir()
    sf.write(mixtures / "set" / "song0" / "drums.wav", np.zeros(100), 22050)  # the user's own file
    untouched = (mixtures / "set" / "song0" / "drums.wav").read_bytes()
    escaping = ["../secret.wav", str(mixtures / "set" / "song0.flac")]
    with open(mixtures / "metadata.csv", "a", newline="") as handle:
        csv.writer(handle).writerows([(path, "x", "train") for path in escaping])
    report = separate_folder(mixtures, tmp_path / "out", RATE, progress=False)
    assert (report.separated, report.failed) == (3, 3)
    written = {path for path in tmp_path.rglob("*.wav") if path.name in ("mixture.wav", "drums.wav", "other.wav")}
    assert written - set((tmp_path / "out").rglob("*.wav")) == {mixtures / "set" / "song0" / "drums.wav"}
    assert (mixtures / "set" / "song0" / "drums.wav").read_bytes() == untouched
    skipped = list(csv.DictReader(open(tmp_path / "out" / "skipped.csv")))
    assert [(row["path"], row["reason"]) for row in skipped][1:] == [(path, "outside the folder") for path in escaping]


def test_an_interrupted_separation_continues_without_redoing_finished_files(mixtures, tmp_path, monkeypatch):
    write = separation._write_wav
    mixtures_written = []

    def write_then_interrupt(path, audio, rate):
        write(path, audio, rate)
        if path.name == "mixture.wav":
            mixtures_written.append(path)
            if len(mixtures_written) == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(separation, "_write_wav", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        separate_folder(mixtures, tmp_path / "out", RATE, progress=False)
    first = tmp_path / "out" / "set" / "song0" / "mixture.wav"
    finished_at = first.stat().st_mtime_ns
    monkeypatch.setattr(separation, "_write_wav", write)
    report = separate_folder(mixtures, tmp_path / "out", RATE, progress=False)
    assert (report.already_done, report.separated) == (1, 2)
    assert first.stat().st_mtime_ns == finished_at
    rows = list(csv.DictReader(open(tmp_path / "out" / "metadata.csv")))
    assert [row["path"] for row in rows] == [f"set/song{i}/mixture.wav" for i in range(3)]


def test_resuming_with_other_settings_is_refused(mixtures, tmp_path):
    separate_folder(mixtures, tmp_path / "out", RATE, splits=["test"], progress=False)
    with pytest.raises(ValueError, match="other settings"):
        separate_folder(mixtures, tmp_path / "out", 22050, splits=["test"], progress=False)


def test_separate_command_prints_its_speed_in_seconds_of_audio_per_second(mixtures, tmp_path, capsys):
    assert main(["separate", str(mixtures), str(tmp_path / "out"), "--sample-rate", "16000", "--split", "train",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "separated 2 files" in printed and "s of audio per second" in printed


def _tiny_demucs_file(path, samplerate: int):
    """A randomly initialised HTDemucs, saved as the Demucs release saves its models."""
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    model = HTDemucs(["drums", "bass", "other", "vocals"], channels=8, depth=2, t_layers=1, t_heads=2, nfft=512,
                     segment=1, samplerate=samplerate)
    args, kwargs = model._init_args_kwargs
    torch.save({"klass": HTDemucs, "args": args, "kwargs": kwargs, "state": model.state_dict()}, path)
    return model


def test_demucs_adapter_loads_the_weights_from_the_given_file_and_writes_its_four_sources(tmp_path):
    pytest.importorskip("demucs")
    from demucs.apply import apply_model

    model = _tiny_demucs_file(tmp_path / "model.th", RATE).eval()
    folder = tmp_path / "in"
    folder.mkdir()
    clicks, tone = clicks_and_tone(1.2)
    sf.write(folder / "song.wav", clicks + tone, RATE, subtype="FLOAT")
    separate_folder(folder, tmp_path / "out", RATE, separator="demucs", model=tmp_path / "model.th", progress=False)

    mixture = torch.from_numpy(np.stack([clicks + tone] * 2))
    mean, std = mixture.mean(0).mean(), mixture.mean(0).std() + 1e-8
    with torch.no_grad():
        expected = apply_model(model, ((mixture - mean) / std)[None], shifts=0, split=True, overlap=0.25)[0] * std + mean
    for k, source in enumerate(model.sources):
        written, rate = sf.read(tmp_path / "out" / "song" / f"{source}.wav", dtype="float32")
        assert rate == RATE
        np.testing.assert_allclose(written, expected[k].mean(0).numpy(), atol=1e-5)
    prepare_store(tmp_path / "out", tmp_path / "store", RATE, num_workers=0, progress=False)
    assert AudioStore(tmp_path / "store").source_names == ("vocals", "drums", "bass", "other")


def test_demucs_adapter_refuses_a_model_file_that_would_run_code(tmp_path):
    pytest.importorskip("demucs")
    torch.save({"klass": print, "args": (), "kwargs": {}, "state": {}}, tmp_path / "evil.th")
    with pytest.raises(ValueError, match="not a Demucs model file"):
        separation.DemucsSeparator(tmp_path / "evil.th")
