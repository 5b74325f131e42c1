"""The `mucon` command end to end, as a user types it."""

import csv

import numpy as np
import pytest

from mucon.cli import main

from conftest import pretrain_tiny, write_tone_folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tone_store):
    return pretrain_tiny("clmr-cpu", tone_store, tmp_path_factory.mktemp("cli") / "run", steps=1)


def test_embed_gives_every_good_file_an_embedding_and_reports_the_bad_one(tmp_path, checkpoint, capsys):
    audio = write_tone_folder(tmp_path / "audio", 4, 16000, 2.0)
    (audio / "broken.wav").write_text("not audio at all")
    assert main(["embed", str(audio), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "embedded 4 files" in capsys.readouterr().out
    embeddings = np.load(tmp_path / "out" / "embeddings.npy")
    with open(tmp_path / "out" / "index.csv") as handle:
        names = [row["path"] for row in csv.DictReader(handle)]
    with open(tmp_path / "out" / "failed.csv") as handle:
        failed = [row["path"] for row in csv.DictReader(handle)]
    assert sorted(names) == [f"tone{i:03d}.wav" for i in range(4)]
    assert embeddings.shape[0] == 4 and np.isfinite(embeddings).all()
    assert [name.rsplit("/", 1)[-1] for name in failed] == ["broken.wav"]


def test_pretrain_accepts_a_preset_name_and_overrides_after_options(tmp_path, tone_store, capsys):
    code = main(["pretrain", "--config", "clmr-cpu", "--store", str(tone_store), "--run-dir", str(tmp_path / "run"),
                 "trainer.max_steps=1", "data.batch_size=4", "data.num_workers=0", "trainer.progress_bar=false"])
    assert code == 0
    assert "last.ckpt" in capsys.readouterr().out


def test_an_unknown_preset_is_a_one_line_error_listing_the_shipped_ones(capsys):
    assert main(["pretrain", "--config", "no-such-preset"]) == 2
    error = capsys.readouterr().err
    assert "no-such-preset" in error and "clmr-cpu" in error and "Traceback" not in error
