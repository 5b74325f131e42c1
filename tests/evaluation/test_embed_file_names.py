"""`mucon embed` treats a file name that is not valid UTF-8 like any other name."""

import csv
import os

import numpy as np
import soundfile as sf
import torch

from mucon.encoders import build_encoder
from mucon.evaluation.embed import embed_folder

RATE = 16000


def test_embed_folder_embeds_a_file_whose_name_is_not_utf8_and_lists_it_by_that_name(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    name = os.fsdecode(b"chanson fran\xe7aise.wav")  # latin-1 bytes
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)
    sf.write(os.fsencode(folder / name), tone, RATE)
    sf.write(folder / "plain.wav", tone, RATE)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        encoder = build_encoder("small_cnn", sample_rate=RATE, input_samples=RATE).eval()
    result = embed_folder(encoder, folder, tmp_path / "out", progress=False)
    assert (result.n_embedded, result.n_failed) == (2, 0)
    with open(result.index, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        assert [row["path"] for row in csv.DictReader(handle)] == sorted([name, "plain.wav"])
