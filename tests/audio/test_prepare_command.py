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
