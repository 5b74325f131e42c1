"""`mucon embed` reads a folder as `prepare` does, and `evaluate` reuses what `embed` embedded."""

import csv

import numpy as np
import pytest

from mucon.audio.store import AudioStore
from mucon.cli import main
from mucon.evaluation import embedding_cache

from conftest import write_tone_folder


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def linked_music(tmp_path):
    """A folder whose only sub-folder is a symbolic link to the recordings, as in the first-use report."""
    write_tone_folder(tmp_path / "recordings" / "album", 3, 16000, 2.0)
    (tmp_path / "recordings" / "album" / "metadata.csv").unlink()
    (tmp_path / "music").mkdir()
    (tmp_path / "music" / "album").symlink_to(tmp_path / "recordings" / "album")
    return tmp_path / "music"


def test_embed_follows_a_linked_sub_folder_and_finds_the_files_prepare_stores(linked_music, tmp_path, clmr_checkpoint,
                                                                            capsys):
    assert main(["embed", str(linked_music), "--checkpoint", str(clmr_checkpoint), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    assert "embedded 3 files" in capsys.readouterr().out
    assert main(["prepare", str(linked_music), str(tmp_path / "store"), "--sample-rate", "16000", "--workers", "0",
                 "--quiet"]) == 0
    store = AudioStore(tmp_path / "store")
    stored = [store.path(i) for i in range(len(store))]
    embedded = [row["path"] for row in read_csv(tmp_path / "out" / "index.csv")]
    assert embedded == sorted(stored) == [f"album/tone{i:03d}.wav" for i in range(3)]


@pytest.mark.parametrize("command", ["embed", "prepare", "separate"])
def test_a_folder_without_audio_is_a_one_line_error_naming_it(command, tmp_path, clmr_checkpoint, capsys):
    (tmp_path / "music" / "notes").mkdir(parents=True)
    (tmp_path / "music" / "notes" / "readme.txt").write_text("no audio here")
    argv = {"embed": ["embed", str(tmp_path / "music"), "--checkpoint", str(clmr_checkpoint), "--out",
                      str(tmp_path / "out"), "--quiet"],
            "prepare": ["prepare", str(tmp_path / "music"), str(tmp_path / "store"), "--sample-rate", "16000",
                        "--quiet"],
            "separate": ["separate", str(tmp_path / "music"), str(tmp_path / "separated"), "--sample-rate", "16000",
                         "--quiet"]}[command]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"mucon {command}: {tmp_path / 'music'}: no audio files") and error.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_embed_copies_the_labels_of_the_folders_metadata_csv_into_its_index(tmp_path, clmr_checkpoint):
    audio = write_tone_folder(tmp_path / "audio", 3, 16000, 2.0)
    (audio / "unlisted.wav").write_bytes((audio / "tone000.wav").read_bytes())
    assert main(["embed", str(audio), "--checkpoint", str(clmr_checkpoint), "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    listed = {row["path"]: row["genre"] for row in read_csv(audio / "metadata.csv")}
    index = read_csv(tmp_path / "out" / "index.csv")
    assert list(index[0]) == ["row", "path", "seconds", "windows", "genre"]
    assert {row["path"]: row["genre"] for row in index} == {**listed, "unlisted.wav": ""}


def test_evaluate_takes_the_embeddings_embed_made_from_the_shared_cache(tmp_path, clmr_checkpoint, monkeypatch):
    audio = write_tone_folder(tmp_path / "audio", 6, 16000, 2.0)
    task = tmp_path / "genre.csv"
    with open(task, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["path", "split", "genre"])
        rows.writerows([(row["path"], "train" if i < 4 else "test", "low" if i % 2 else "high")
                        for i, row in enumerate(read_csv(audio / "metadata.csv"))])
    (tmp_path / "genre.yaml").write_text("name: genre\ntype: multiclass\nlabel: genre\naudio_root: audio\n")
    asked = []
    real_embed_jobs = embedding_cache.embed_jobs
    monkeypatch.setattr(embedding_cache, "embed_jobs", lambda jobs, *args, **kwargs: asked.append(
        [list(job.paths) for job in jobs]) or real_embed_jobs(jobs, *args, **kwargs))
    assert main(["embed", str(audio), "--checkpoint", str(clmr_checkpoint), "--out", str(tmp_path / "out"),
                 "--cache", str(tmp_path / "shared"), "--quiet"]) == 0
    assert asked == [[sorted(f"tone{i:03d}.wav" for i in range(6))]]
    assert main(["evaluate", "--checkpoint", str(clmr_checkpoint), "--tasks", str(tmp_path / "genre.yaml"),
                 "--out", str(tmp_path / "report"), "--cache", str(tmp_path / "shared"), "--no-baselines",
                 "--no-robustness", "--quiet"]) == 0
    assert len(asked) == 1  # every file came from embed's cache entries: no encoder forward
    assert np.load(tmp_path / "out" / "embeddings.npy").shape[0] == 6
