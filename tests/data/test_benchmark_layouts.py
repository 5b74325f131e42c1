"""The benchmark datasets' layouts: each publisher's folder becomes a table of paths, labels and splits,
and a folder that lacks a file is refused naming that file, where it was expected and its release."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from mucon.data.layouts import LAYOUTS, published_lines, read_table

import benchmark_folders as folders


def rows(table, column):
    return {track.path.rsplit("/", 1)[-1]: track.labels[table.label_columns.index(column)] for track in table.tracks}


def test_mtat_carries_the_musicnn_split_the_top50_tags_and_all_tags(tmp_path):
    table = read_table(folders.write_mtat(tmp_path / "mtat"))
    assert table.layout == "mtat" and table.label_columns == ("split", "top50", "tags")
    splits = {path.split("/")[0]: split for path, split in
              ((track.path, track.labels[0]) for track in table.tracks)}
    assert splits == {"0": "train", "1": "train", "2": "train", "3": "train", "c": "valid", "d": "test", "e": "test",
                      "f": "test", "6": ""}  # clip 35644 (folder 6) is one of the three musicnn leaves out
    tags = {track.path.split("/")[0]: track.labels[1:] for track in table.tracks}
    assert tags["1"] == ("techno;electronic", "singer;techno;electronic")  # "singer" is not a top-50 tag
    assert tags["3"] == ("", "duet")  # no top-50 tag: kept, a negative for every tag


def test_mtg_jamendo_reads_the_split0_tsvs_with_their_crlf_lines_and_the_low_quality_audio(tmp_path):
    table = read_table(folders.write_mtg_jamendo(tmp_path / "jamendo"))
    assert table.layout == "mtg-jamendo"
    assert table.label_columns == ("split", "top50tags", "genre", "moodtheme", "instrument")
    labels = {track.path: track.labels for track in table.tracks}
    assert labels["16/216.mp3"] == ("train", "genre---metal;instrument---guitar", "genre---metal", "",
                                    "instrument---guitar")
    assert labels["00/1400.mp3"][0] == "valid" and labels["01/7701.mp3"][0] == "test"
    assert labels["02/7702.low.mp3"][0] == "train"  # only the audio-low file is there


def test_gtzan_carries_the_fault_filtered_split_and_ten_seeded_folds(tmp_path):
    table = read_table(folders.write_gtzan(tmp_path / "gtzan"))
    assert table.layout == "gtzan" and table.label_columns == ("split", "genre", "fold")
    split = rows(table, "split")
    assert split["blues.00029.wav"] == "train" and split["blues.00000.wav"] == "valid"
    assert split["classical.00011.wav"] == "test" and split[f"{folders.GTZAN_LEFT_OUT}.wav"] == ""
    assert len(table.tracks) == 1000  # every excerpt of the release, present or not: a missing one gets named
    folds = rows(table, "fold")
    assert Counter(folds.values()) == {str(fold): 100 for fold in range(10)}
    assert Counter((rows(table, "genre")[name], fold) for name, fold in folds.items())[("jazz", "3")] == 10
    assert rows(read_table(folders.write_gtzan(tmp_path / "again")), "fold") == folds  # the same folds every time


def test_gtzan_reads_the_original_au_release(tmp_path):
    table = read_table(folders.write_gtzan(tmp_path / "gtzan", extension=".au"))
    assert rows(table, "genre")["blues.00029.au"] == "blues" and rows(table, "split")["blues.00029.au"] == "train"


def test_nsynth_reads_pitch_and_family_from_each_split_examples_json(tmp_path):
    table = read_table(folders.write_nsynth(tmp_path / "nsynth"))
    assert table.layout == "nsynth" and table.label_columns == ("split", "pitch", "instrument_family")
    labels = {track.path: track.labels for track in table.tracks}
    assert labels["nsynth-test/audio/bass_synthetic_134-034-050.wav"] == ("test", "34", "bass")
    assert sum(1 for split, _, _ in labels.values() if split == "train") == 4


def test_giantsteps_trains_on_the_mtg_key_set_and_tests_on_the_giantsteps_key_set(tmp_path):
    table = read_table(folders.write_giantsteps(tmp_path / "giantsteps"))
    assert table.layout == "giantsteps" and table.label_columns == ("split", "key")
    labels = {track.path.rsplit("/", 1)[-1]: track.labels for track in table.tracks}
    assert labels["10089.LOFI.mp3"] == ("test", "D major")  # annotations/key/10089.LOFI.key
    assert labels["5061.LOFI.mp3"] == ("train", "D# minor") and labels["14720.LOFI.mp3"] == ("valid", "D minor")
    assert labels["10981.LOFI.mp3"] == ("", "-")  # no key: outside JukeMIR's split


def test_fma_small_reads_the_set_and_genre_columns_of_tracks_csv(tmp_path):
    table = read_table(folders.write_fma(tmp_path / "fma"))
    assert table.layout == "fma-small" and table.label_columns == ("split", "genre")
    labels = {track.path: track.labels for track in table.tracks}
    assert labels["fma_small/000/000141.mp3"] == ("valid", "Hip-Hop") and len(labels) == 8  # medium track 3 left out


def test_covers80_pairs_the_versions_of_its_two_lists(tmp_path):
    table = read_table(folders.write_covers80(tmp_path / "covers80"))
    assert table.layout == "covers80" and table.label_columns == ("split", "work", "list")
    works = rows(table, "work")
    assert works["annie_lennox+Medusa+03-A_Whiter_Shade_Of_Pale.mp3"] == "A_Whiter_Shade_Of_Pale"
    assert sorted(rows(table, "list").values()) == ["list1"] * 3 + ["list2"] * 3


def test_a_hear_task_folder_reads_its_split_jsons_at_its_highest_rate(tmp_path):
    task = folders.write_hear_task(tmp_path, "tones-v2.2.3-5h")
    table = read_table(task)
    assert table.layout == "hear" and table.label_columns == ("split", "label")
    assert {track.path.split("/")[0] for track in table.tracks} == {"22050"}
    assert rows(table, "label")["train_001.wav"] == "high" and rows(table, "split")["valid_000.wav"] == "valid"



def test_a_hear_split_label_that_is_a_string_is_one_label_and_a_list_is_several(tmp_path):
    task = folders.write_hear_task(tmp_path, "tones-v2.2.3-5h")
    (task / "train.json").write_text(json.dumps({"train_000.wav": "low", "train_001.wav": ["high", "low"],
                                                 "train_002.wav": "low", "train_003.wav": ["high"]}))
    labels = rows(read_table(task), "label")
    assert [labels[f"train_00{i}.wav"] for i in range(4)] == ["low", "high;low", "low", "high"]


def test_a_hear_split_json_that_is_a_list_is_refused_naming_the_file(tmp_path):
    task = folders.write_hear_task(tmp_path, "tones-v2.2.3-5h")
    (task / "valid.json").write_text(json.dumps([["valid_000.wav", ["low"]]]))
    with pytest.raises(ValueError, match=r"valid\.json: a HEAR split file is a JSON object .*not a list"):
        read_table(task)


@pytest.mark.parametrize(("write", "layout", "removed", "named"), [
    (folders.write_mtat, "mtat", "annotations_final.csv", "mirg.city.ac.uk"),
    (folders.write_mtg_jamendo, "mtg-jamendo", "data/splits/split-0/autotagging_genre-test.tsv", "mtg-jamendo-dataset"),
    (folders.write_nsynth, "nsynth", "nsynth-valid/examples.json", "NSynth v2.2.3"),
    (folders.write_giantsteps, "giantsteps", "giantsteps-mtg-key-dataset/annotations/annotations.txt",
     "giantsteps-mtg-key-dataset"),
    (folders.write_fma, "fma-small", "fma_metadata/tracks.csv", "fma_metadata.zip"),
    (folders.write_covers80, "covers80", "coversongs/covers32k/list2.list", "covers80.tgz"),
    (folders.write_hear, "hear", "tones-v2.2.3-5h/valid.json", "HEAR 2021"),
])
def test_a_folder_without_one_of_its_files_names_it_and_its_release(tmp_path, write, layout, removed, named):
    root = write(tmp_path / layout)
    (root / removed).unlink()
    folder = root / "tones-v2.2.3-5h" if layout == "hear" else root
    with pytest.raises(FileNotFoundError) as error:
        read_table(folder, layout)
    message = str(error.value)
    assert removed.rsplit("/", 1)[-1] in message and named in message and "\n" not in message


def test_a_gtzan_folder_without_its_genre_folders_says_what_it_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"genres/<genre>/<genre>\.000NN\.wav .*blues, classical"):
        read_table(tmp_path / "empty", "gtzan")


@pytest.mark.parametrize(("layout", "task", "shipped", "column"), [
    ("mtat", "mtat-top50", "mtat-pons2017-split.csv", 1),
    ("giantsteps", "giantsteps-key", "giantsteps-key-jukemir-split.csv", 1),
])
def test_the_shipped_split_lists_hold_the_published_counts(layout, task, shipped, column):
    lines = published_lines(shipped)[1:]
    counts = Counter(line.split(",")[column] for line in lines)
    [spec] = [spec for spec in LAYOUTS[layout].tasks if spec.name == task]
    assert dict(counts) == dict(spec.counts)


def test_the_shipped_gtzan_lists_hold_the_published_fault_filtered_counts():
    counts = {split: len(published_lines(f"gtzan-fault-filtered/{split}_filtered.txt"))
              for split in ("train", "valid", "test")}
    [spec] = [spec for spec in LAYOUTS["gtzan"].tasks if spec.name == "gtzan-genre"]
    assert counts == dict(spec.counts) == {"train": 443, "valid": 197, "test": 290}
