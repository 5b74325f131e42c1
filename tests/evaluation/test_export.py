import csv
import os

import numpy as np
import soundfile as sf
import torch
from embedding_clips import RATE, read_csv, small_encoder

from mucon import hear
from mucon.audio.io import load_audio
from mucon.evaluation.export import embed_folder


def test_embed_folder_embeds_every_good_file_and_reports_the_bad_one(encoder, folder, tmp_path):
    result = embed_folder(encoder, folder, tmp_path / "out", batch_size=4, progress=False)
    index = read_csv(result.index)
    failed = read_csv(result.failed)
    assert [row["path"] for row in index] == ["a.wav", "b.flac", "d.wav", "e.wav", "sub/c.wav"]
    assert [(row["path"], row["reason"]) for row in failed] == [("broken.wav", "not audio")]
    assert (result.n_embedded, result.n_failed) == (5, 1)
    matrix = np.load(result.embeddings, mmap_mode="r")
    assert matrix.shape == (5, encoder.dim) and matrix.dtype == np.float32 and np.isfinite(matrix).all()


def test_embed_folder_with_a_hop_longer_than_the_window_embeds_no_window_past_the_end_of_a_file(encoder, folder, tmp_path):
    result = embed_folder(encoder, folder, tmp_path / "out", hop_seconds=1.5, progress=False)
    windows = {row["path"]: int(row["windows"]) for row in read_csv(result.index)}
    assert windows == {"a.wav": 2, "b.flac": 1, "d.wav": 1, "e.wav": 1, "sub/c.wav": 1}  # a.wav: at 0 and 1.5 s


def test_embed_with_a_batch_size_of_zero_fails_before_writing_anything(folder, tmp_path, capsys):
    from mucon.cli import main

    out = tmp_path / "out"
    code = main(["embed", str(folder), "--checkpoint", str(tmp_path / "run.ckpt"), "--out", str(out),
                 "--batch-size", "0", "--quiet"])
    assert code == 2 and "batch size" in capsys.readouterr().err
    assert not out.exists()


def test_embed_folder_rows_are_the_hear_scene_embeddings_of_the_files(encoder, folder, tmp_path):
    half_window = encoder.input_samples / RATE / 2  # HEAR's hop
    result = embed_folder(encoder, folder, tmp_path / "out", hop_seconds=half_window, max_windows=None, batch_size=3,
                          precision="32-true", progress=False)
    matrix = np.load(result.embeddings)
    model = hear.model_from_encoder(encoder)
    for row in read_csv(result.index):
        audio = torch.from_numpy(load_audio(folder / row["path"], RATE)).unsqueeze(0)
        expected = hear.get_scene_embeddings(audio, model)[0].numpy()
        np.testing.assert_allclose(matrix[int(row["row"])], expected, atol=1e-5, rtol=1e-4)
        assert int(row["windows"]) == max(1, int(np.ceil((audio.shape[1] - RATE) / (RATE // 2))) + 1)


def test_embed_folder_embeds_a_file_whose_name_is_not_utf8_and_lists_it_by_that_name(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    name = os.fsdecode(b"chanson fran\xe7aise.wav")  # latin-1 bytes
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    sf.write(os.fsencode(folder / name), tone, RATE)
    sf.write(folder / "plain.wav", tone, RATE)
    result = embed_folder(small_encoder(), folder, tmp_path / "out", progress=False)
    assert (result.n_embedded, result.n_failed) == (2, 0)
    with open(result.index, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == sorted([name, "plain.wav"])
