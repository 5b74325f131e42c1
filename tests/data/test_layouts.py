"""Dataset layouts: each release's folder becomes the same table of mixtures, stems, labels and splits."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from mucon.data.layouts import SOURCE_TYPES, detect_layout, read_table
from mucon.data.layouts.slakh import DEFAULT_STEM_MAP
from multitrack import write_musdb_track, write_slakh_track


@pytest.fixture
def musdb(tmp_path):
    root = tmp_path / "musdb18hq"
    write_musdb_track(root, "train", "A Classic Education - NightOwl", seconds=0.2)
    write_musdb_track(root, "test", "Al James - Schoolboy Facination", seconds=0.2)
    return root


@pytest.fixture
def slakh(tmp_path):
    root = tmp_path / "slakh2100_flac_redux"
    write_slakh_track(root, "train", 1, seconds=0.2)
    write_slakh_track(root, "validation", 2, seconds=0.2)
    write_slakh_track(root, "test", 3, seconds=0.2)
    return root


def test_musdb18hq_is_detected_and_each_track_lists_its_four_stems_and_its_release_split(musdb):
    table = read_table(musdb)
    assert table.layout == "musdb18hq" and table.label_columns == ("split",)
    first = table.tracks[0]
    assert [track.path for track in table.tracks] == [
        "test/Al James - Schoolboy Facination/mixture.wav", "train/A Classic Education - NightOwl/mixture.wav"]
    assert [track.labels for track in table.tracks] == [("test",), ("train",)]
    assert first.stems == tuple((s, (f"test/Al James - Schoolboy Facination/{s}.wav",)) for s in SOURCE_TYPES)


def test_musdb18_stem_mp4_release_is_refused_with_a_pointer_to_the_hq_release(tmp_path):
    (tmp_path / "musdb18" / "train").mkdir(parents=True)
    (tmp_path / "musdb18" / "train" / "A - B.stem.mp4").write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="MUSDB18-HQ"):
        read_table(tmp_path / "musdb18")


def test_slakh2100_maps_instruments_onto_the_four_types_and_drops_unrendered_stems(slakh):
    table = read_table(slakh)
    assert table.layout == "slakh2100"
    assert [(track.path, track.labels) for track in table.tracks] == [
        ("test/Track00003/mix.flac", ("test",)), ("train/Track00001/mix.flac", ("train",)),
        ("validation/Track00002/mix.flac", ("validation",))]
    stems = dict(table.tracks[1].stems)
    assert stems == {
        "vocals": ("train/Track00001/stems/S04.flac",),  # Choir Aahs, program 52
        "drums": ("train/Track00001/stems/S02.flac",),  # is_drum
        "bass": ("train/Track00001/stems/S01.flac",),  # inst_class Bass
        "other": ("train/Track00001/stems/S00.flac", "train/Track00001/stems/S03.flac"),  # piano + guitar, summed
    }  # S05 (organ) has audio_rendered: false


def test_a_stem_map_file_overrides_the_slakh_mapping(slakh, tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text(json.dumps({"inst_class": {"Guitar": "bass"}, "program_num": {"52": "other"}}))
    stems = dict(read_table(slakh, stem_map=mapping).tracks[1].stems)
    assert stems["bass"] == ("train/Track00001/stems/S01.flac", "train/Track00001/stems/S03.flac")
    assert stems["other"] == ("train/Track00001/stems/S00.flac", "train/Track00001/stems/S04.flac")
    assert "vocals" not in stems
    assert DEFAULT_STEM_MAP["program_num"][52] == "vocals"  # the defaults are not modified by an override


def test_a_stem_map_naming_an_unknown_source_type_is_refused(slakh, tmp_path):
    mapping = tmp_path / "map.yaml"
    mapping.write_text("inst_class:\n  Guitar: guitars\n")
    with pytest.raises(ValueError, match="guitars"):
        read_table(slakh, stem_map=mapping)


def test_a_broken_slakh_metadata_file_makes_its_track_a_listed_problem_not_a_crash(slakh):
    (slakh / "test" / "Track00003" / "metadata.yaml").write_text("stems: [unclosed")
    problem = read_table(slakh).tracks[0].problem
    assert problem[0] == "bad metadata" and "Track00003/metadata.yaml" in problem[1]


def test_the_builtin_corpus_table_gives_stems_from_its_stem_columns(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    rows = [{"path": "mixtures/a.wav", "split": "train", "composer": "bach", "stem_vocals": "stems/a/vocals.wav",
             "stem_drums": "", "stem_bass": "stems/a/bass.wav", "stem_other": ""}]
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = read_table(root)
    assert table.layout == "corpus"
    assert table.tracks[0].stems == (("vocals", ("stems/a/vocals.wav",)), ("bass", ("stems/a/bass.wav",)))
    assert table.label_columns[:2] == ("split", "composer")
    assert read_table(root, "plain").tracks[0].stems == ()  # forcing plain reads mixtures only


def test_a_folder_of_plain_files_is_plain_and_splits_filter_rows(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(100), 8000)
    assert detect_layout(tmp_path).name == "plain"
    with open(tmp_path / "metadata.csv", "w") as handle:
        handle.write("path,split\na.wav,train\nb.wav,test\nc.wav,train\n")
    assert [track.path for track in read_table(tmp_path, splits=["train"]).tracks] == ["a.wav", "c.wav"]
    assert [track.path for track in read_table(tmp_path, splits=["train", "test"]).tracks] == ["a.wav", "b.wav", "c.wav"]
    with pytest.raises(ValueError, match="no rows of split valid .its splits: test, train"):
        read_table(tmp_path, splits=["valid"])


def test_split_filter_on_a_table_without_split_column_is_an_error(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(100), 8000)
    with pytest.raises(ValueError, match="no split column"):
        read_table(tmp_path, splits=["train"])


def test_unknown_layout_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="slakh2100"):
        read_table(tmp_path, "medleydb")

