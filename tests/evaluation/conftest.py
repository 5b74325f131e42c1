"""Fixtures of the embedding tests: one small encoder and a folder of clips (see ``clips``)."""

import pytest
from embedding_clips import small_encoder, write_clip_folder


@pytest.fixture(scope="module")
def encoder():
    return small_encoder()


@pytest.fixture
def folder(tmp_path):
    return write_clip_folder(tmp_path / "audio")
