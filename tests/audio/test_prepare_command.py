"""`mucon prepare` as a user runs it: counts printed, bad files listed, --strict names the first bad file."""

import csv

from mucon.audio.io import is_audio_path
from mucon.cli import main



def test_prepare_prints_counts_and_lists_each_bad_file_with_its_reason(mixed_audio_dir, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["prepare", str(mixed_audio_dir), str(store), "--sample-rate", "16000", "--quiet", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    good_files = sum(1 for p in mixed_audio_dir.rglob("*") if is_audio_path(p)) - 5
    assert f"kept {good_files} files" in printed
    assert "skipped 5 (1 corrupt, 1 empty, 1 not audio, 1 silent, 1 too short)" in printed
    with open(store / "skipped.csv") as handle:
        reasons = {row["path"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(handle)}
    assert reasons == {"bad_corrupt.flac": "corrupt", "bad_empty.wav": "empty", "bad_text.wav": "not audio",
                       "bad_short.wav": "too short", "bad_silent.wav": "silent"}


def test_strict_prepare_fails_naming_the_first_bad_file(mixed_audio_dir, tmp_path, capsys):
    code = main(["prepare", str(mixed_audio_dir), str(tmp_path / "store"), "--sample-rate", "16000", "--strict",
                 "--quiet", "--workers", "1"])
    assert code == 1
    error = capsys.readouterr().err
    assert "bad_corrupt.flac" in error and "corrupt" in error


def test_a_zero_sample_rate_is_one_line_and_leaves_nothing_that_blocks_the_corrected_command(mixed_audio_dir, tmp_path,
                                                                                            capsys):
    store = tmp_path / "store"
    code = main(["prepare", str(mixed_audio_dir), str(store), "--sample-rate", "0", "--quiet", "--workers", "1"])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("mucon prepare: ") and error.count("\n") == 1 and "sample rate" in error
    assert not store.exists()
    assert main(["prepare", str(mixed_audio_dir), str(store), "--sample-rate", "16000", "--quiet", "--workers", "1"]) == 0


def test_a_file_given_as_the_audio_folder_is_one_line(mixed_audio_dir, tmp_path, capsys):
    code = main(["prepare", str(mixed_audio_dir / "a_16k_mono.wav"), str(tmp_path / "store"), "--sample-rate", "16000"])
    assert code == 2 and "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()
