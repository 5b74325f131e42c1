from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import soxr

from mucon.audio.io import AUDIO_EXTENSIONS, AudioDecodeError, decode_blocks, is_audio_path, load_audio, walk_audio_files

from .conftest import BAD_FILES, GOOD_FILES, music_like, write_truncated_mp3


@pytest.mark.parametrize("name", sorted(GOOD_FILES))
def test_load_audio_decodes_every_format_to_mono_float32_at_the_requested_rate(mixed_audio_dir, name):
    file_rate, _, seconds, _ = GOOD_FILES[name]
    audio = load_audio(mixed_audio_dir / name, 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Lossy codecs pad a few ms at the edges; the duration must still survive resampling.
    assert abs(len(audio) / 16000 - seconds) < 0.03
    assert 0.05 < np.abs(audio).max() <= 1.0


def test_load_audio_averages_channels_so_mono_keeps_the_level(tmp_path):
    left = music_like(16000, 1, 1.0, seed=1)[:, 0]
    sf.write(tmp_path / "lr.wav", np.stack([left, np.zeros_like(left)], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "lr.wav", 16000), left / 2, atol=1e-7)


def test_load_audio_keeps_channels_first_when_mono_is_false(mixed_audio_dir):
    audio = load_audio(mixed_audio_dir / "b_22k_stereo.flac", 22050, mono=False)
    assert audio.shape == (2, int(round(1.3 * 22050)))


def test_load_audio_resampling_preserves_pitch(tmp_path):
    t = np.arange(44100) / 44100
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 44100, subtype="FLOAT")
    audio = load_audio(tmp_path / "tone.wav", 16000)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert len(audio) == 16000
    assert np.corrcoef(audio[200:-200], expected[200:-200])[0, 1] > 0.999


@pytest.mark.parametrize("name", sorted(set(BAD_FILES) - {"bad_short.wav", "bad_silent.wav"}))
def test_load_audio_raises_decode_error_with_a_reason_per_kind_of_bad_file(mixed_audio_dir, name):
    with pytest.raises(AudioDecodeError) as caught:
        load_audio(mixed_audio_dir / name, 16000)
    assert caught.value.reason == BAD_FILES[name]
    assert caught.value.path == str(mixed_audio_dir / name)


def test_load_audio_reports_a_missing_file_as_unreadable(tmp_path):
    with pytest.raises(AudioDecodeError, match="unreadable") as caught:
        load_audio(tmp_path / "missing.wav", 16000)
    assert caught.value.reason == "unreadable"


def test_load_audio_reports_a_header_without_frames_as_empty(tmp_path):
    sf.write(tmp_path / "no_frames.wav", np.zeros((0, 1)), 16000)
    with pytest.raises(AudioDecodeError) as caught:
        load_audio(tmp_path / "no_frames.wav", 16000)
    assert caught.value.reason == "empty"


def test_load_audio_rejects_float_files_with_nan_samples_as_corrupt(tmp_path):
    samples = music_like(16000, 1, 1.0, seed=2)
    samples[100] = np.nan
    sf.write(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError) as caught:
        load_audio(tmp_path / "nan.wav", 16000)
    assert caught.value.reason == "corrupt"


def test_decode_error_message_names_path_and_reason():
    message = str(AudioDecodeError("/data/x.wav", "corrupt", "flac decoder lost sync"))
    assert "/data/x.wav" in message and "corrupt" in message and "lost sync" in message


def test_audio_extensions_match_case_insensitively():
    assert {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"} == AUDIO_EXTENSIONS
    assert is_audio_path("a/B.FLAC") and is_audio_path("x.Mp3")
    assert not is_audio_path("notes.txt") and not is_audio_path("wav")


def test_load_audio_scales_a_float_file_peaking_above_one_down_to_peak_one_instead_of_clipping(tmp_path):
    signal = music_like(16000, 1, 1.0, seed=3)[:, 0]
    loud = 4.0 * signal / np.abs(signal).max()
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    audio = load_audio(tmp_path / "loud.wav", 16000)
    assert np.abs(audio).max() == pytest.approx(1.0)
    np.testing.assert_allclose(audio, loud / 4.0, atol=1e-6)  # the waveform's shape is kept, nothing clipped


def test_load_audio_opens_a_file_whose_name_is_not_utf8(tmp_path):
    name = os.fsdecode(b"caf\xe9 (latin-1).wav")
    sf.write(os.fsencode(tmp_path / name), music_like(16000, 1, 1.0, seed=4), 16000)
    assert load_audio(tmp_path / name, 16000).shape == (16000,)


def test_decoding_in_blocks_gives_the_samples_of_decoding_the_whole_file_at_once(mixed_audio_dir):
    path = mixed_audio_dir / "b_22k_stereo.flac"
    whole, rate = sf.read(path, dtype="float32", always_2d=True)
    expected = soxr.resample(whole.mean(axis=1, dtype=np.float32), rate, 16000, quality="HQ")
    streamed = np.concatenate(list(decode_blocks(path, 16000, block_frames=1000)))
    np.testing.assert_array_equal(streamed, expected)


def test_a_truncated_mp3_decodes_to_the_audio_it_holds_and_is_reported_as_truncated(tmp_path):
    path = write_truncated_mp3(tmp_path / "cut.mp3", 16000, 4.0)
    held, _ = sf.read(path, dtype="float32")
    reported = []
    blocks = decode_blocks(path, 16000, block_frames=4096, on_truncated=lambda *seconds: reported.append(seconds))
    np.testing.assert_allclose(np.concatenate(list(blocks)), held, atol=1e-6)
    assert len(held) < 3 * 16000 and reported == [(4.0, len(held) / 16000)]


def test_walk_follows_linked_folders_lists_each_folder_once_and_survives_a_loop(tmp_path):
    (tmp_path / "music" / "album").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    for path in (tmp_path / "music" / "album" / "a.wav", tmp_path / "elsewhere" / "b.wav"):
        path.write_bytes(b"")
    (tmp_path / "music" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "music" / "album" / "loop").symlink_to(tmp_path / "music")  # a link back up
    (tmp_path / "music" / "same-album").symlink_to(tmp_path / "music" / "album")
    files, unreadable = walk_audio_files(tmp_path / "music")
    assert files == ["album/a.wav", "linked/b.wav"] and unreadable == []


def test_walk_returns_the_folders_it_cannot_read(tmp_path, make_unreadable):
    (tmp_path / "open").mkdir()
    (tmp_path / "locked").mkdir()
    (tmp_path / "open" / "a.wav").write_bytes(b"")
    make_unreadable("locked")
    assert walk_audio_files(tmp_path) == (["open/a.wav"], [("locked", "Permission denied")])


def test_a_walk_that_finds_no_audio_raises_naming_the_folder_and_what_it_could_not_read(tmp_path, make_unreadable):
    (tmp_path / "locked").mkdir()
    (tmp_path / "readme.txt").write_text("not audio")
    make_unreadable("locked")
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path}: no audio files .*could not read locked"):
        walk_audio_files(tmp_path)
