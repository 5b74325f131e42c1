"""Tiny copies of the public benchmark datasets, in each publisher's exact format.

File names, folder structure, CSV/TSV columns and separators, JSON keys and line endings are the
publishers' (checked against the released files: the MagnaTagATune annotations and musicnn's
index, the MTG-Jamendo repository's split-0 TSVs, the GTZAN archive and the fault-filtered lists,
NSynth's examples.json, the two GiantSteps repositories, FMA's tracks.csv as pandas writes it,
covers80.tgz and the HEAR preprocessing kit's task folders). Items are real ones where a shipped
split list names them, so the published splits apply; the audio is half a second of a tone per
item, pitched by class so that a probe has something to learn.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
SECONDS = 0.5


def write_tone(path: Path, pitch: float, seconds: float = SECONDS, rate: int = RATE) -> None:
    """A harmonic tone in the format the file name says (.mp3, .au or WAV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    audio = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 4)) * 0.2
    kind = {".mp3": "MP3", ".au": "AU"}.get(path.suffix, "WAV")
    sf.write(path, audio.astype(np.float32), rate, format=kind)


# --- MagnaTagATune ------------------------------------------------------------------------------------

# (clip_id, mp3_path, tags) of real clips: folders 0..b are train, c valid, d..f test; 35644 is one of
# the three clips musicnn leaves out.
MTAT_CLIPS = [
    (25, "0/american_bach_soloists-j_s__bach__cantatas_volume_v-01-gleichwie_der_regen_und_schnee_vom_himmel_fallt"
         "_bwv_18_i_sinfonia-0-29.mp3", ["classical", "strings"]),
    (295, "1/ambient_teknology-phoenix-01-ambient_teknology-0-29.mp3", ["techno", "electronic", "singer"]),
    (327, "2/duo_chambure-vihuela_duets_of_valderrabano-01-andreas_christi_sancte_andrea_cristobal_de_morales-30-59"
          ".mp3", ["classical", "guitar"]),
    (696, "3/kiev_theological_academy_and_seminary_choir-traditional_worship_singing_of_kievpechersk_lavra-01-blessed"
          "_is_the_man-0-29.mp3", ["duet"]),  # none of the top-50 tags: a negative for all of them
    (14, "c/lvx_nova-lvx_nova-01-contimune-30-59.mp3", ["techno", "electronic"]),
    (19, "c/lvx_nova-lvx_nova-01-contimune-175-204.mp3", ["classical", "guitar"]),
    (2, "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3", ["classical", "strings"]),
    (224, "d/electric_frankenstein-sick_songs-01-action_high-117-146.mp3", ["rock", "guitar"]),
    (32, "e/steven_devine-portrait_of_an_english_harpsichord-01-lesson_1_in_g_major_prelude_james_nares-0-29.mp3",
     ["electronic", "techno"]),
    (35644, "6/norine_braun-now_and_zen-08-gently-117-146.mp3", ["rock"]),
]


def mtat_tags() -> list[str]:
    """The header's tag columns: the top 50 and two of the others, in an order of the release's kind."""
    from mucon.data.layouts import published_lines

    return ["no voice", "singer", "duet", *[tag for tag in published_lines("mtat-top50-tags.txt") if tag != "no voice"]]


def write_mtat(root: Path) -> Path:
    tags = mtat_tags()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations_final.csv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["clip_id", *tags, "mp3_path"])
        for clip_id, path, present in MTAT_CLIPS:
            writer.writerow([clip_id, *("1" if tag in present else "0" for tag in tags), path])
    for folder in "0123456789abcdef":
        (root / folder).mkdir(exist_ok=True)
    for i, (_, path, present) in enumerate(MTAT_CLIPS):
        write_tone(root / path, 220 if "classical" in present else 660 + 10 * i)
    return root


# --- MTG-Jamendo --------------------------------------------------------------------------------------

# (track number, split, {subset: tags}); the TSV PATH is <last two digits>/<number>.mp3
JAMENDO_TRACKS = [
    (215, "train", {"top50tags": ["genre---metal"], "genre": ["genre---metal"]}),
    (216, "train", {"top50tags": ["genre---metal", "instrument---guitar"], "genre": ["genre---metal"],
                    "instrument": ["instrument---guitar"]}),
    (3524, "train", {"top50tags": ["mood/theme---melodic"], "moodtheme": ["mood/theme---melodic"]}),
    (4882, "train", {"top50tags": ["genre---pop", "mood/theme---melodic"], "genre": ["genre---pop"],
                     "moodtheme": ["mood/theme---melodic", "mood/theme---meditative"]}),
    (1400, "validation", {"top50tags": ["genre---metal"], "genre": ["genre---metal"],
                          "moodtheme": ["mood/theme---meditative"], "instrument": ["instrument---guitar"]}),
    (1401, "validation", {"top50tags": ["genre---pop"], "genre": ["genre---pop"], "moodtheme": ["mood/theme---melodic"],
                          "instrument": ["instrument---piano"]}),
    (7700, "test", {"top50tags": ["genre---metal", "instrument---guitar"], "genre": ["genre---metal"],
                    "moodtheme": ["mood/theme---melodic"], "instrument": ["instrument---guitar"]}),
    (7701, "test", {"top50tags": ["genre---pop"], "genre": ["genre---pop"], "moodtheme": ["mood/theme---meditative"],
                    "instrument": ["instrument---piano"]}),
    (7702, "train", {"instrument": ["instrument---piano"], "top50tags": ["instrument---piano"]}),
]
JAMENDO_LOW_QUALITY = 7702  # its audio is the audio-low download's <id>.low.mp3


def jamendo_path(number: int) -> str:
    return f"{number % 100:02d}/{number}.mp3"


def write_mtg_jamendo(root: Path) -> Path:
    splits = root / "data" / "splits" / "split-0"
    splits.mkdir(parents=True, exist_ok=True)
    for subset in ("top50tags", "genre", "moodtheme", "instrument"):
        for part in ("train", "validation", "test"):
            lines = ["TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"]
            for number, split, tags in JAMENDO_TRACKS:
                if split == part and subset in tags:
                    lines.append("\t".join([f"track_{number:07d}", f"artist_{number // 100:06d}",
                                            f"album_{number // 10:06d}", jamendo_path(number), "212.4", *tags[subset]]))
            (splits / f"autotagging_{subset}-{part}.tsv").write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    for number, _, tags in JAMENDO_TRACKS:
        path = jamendo_path(number)
        if number == JAMENDO_LOW_QUALITY:
            path = path.replace(".mp3", ".low.mp3")
        write_tone(root / path, 220 if "genre---metal" in tags.get("genre", ()) else 880)
    return root


# --- GTZAN --------------------------------------------------------------------------------------------

# excerpts of the fault-filtered lists (train, valid, test) of two genres, and one it leaves out
GTZAN_EXCERPTS = {
    "blues": {"train": [29, 30, 31], "valid": [0, 1], "test": [12, 13]},
    "classical": {"train": [30, 31, 32], "valid": [0, 1], "test": [11, 12]},
}
GTZAN_LEFT_OUT = "classical.00042"


def write_gtzan(root: Path, extension: str = ".wav") -> Path:
    for genre, parts in GTZAN_EXCERPTS.items():
        for numbers in parts.values():
            for number in numbers:
                pitch = 220 if genre == "blues" else 880
                write_tone(root / "genres" / genre / f"{genre}.{number:05d}{extension}", pitch)
    write_tone(root / "genres" / "classical" / f"{GTZAN_LEFT_OUT}{extension}", 880)
    return root


# --- NSynth -------------------------------------------------------------------------------------------

NSYNTH_NOTES = {
    "train": [("bass_synthetic_033", 22, "bass", 0), ("bass_synthetic_033", 34, "bass", 0),
              ("keyboard_electronic_001", 22, "keyboard", 4), ("keyboard_electronic_001", 34, "keyboard", 4)],
    "valid": [("bass_synthetic_068", 22, "bass", 0), ("keyboard_acoustic_004", 34, "keyboard", 4)],
    "test": [("bass_synthetic_134", 34, "bass", 0), ("keyboard_electronic_002", 22, "keyboard", 4)],
}


def write_nsynth(root: Path) -> Path:
    number = 0
    for split, notes in NSYNTH_NOTES.items():
        examples = {}
        for instrument, pitch, family, family_index in notes:
            note_str = f"{instrument}-{pitch:03d}-050"
            source = instrument.split("_")[1]
            examples[note_str] = {
                "note": number, "sample_rate": 16000, "instrument_family": family_index,
                "qualities": [0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "instrument_source_str": source,
                "note_str": note_str, "instrument_family_str": family, "instrument_str": instrument,
                "pitch": pitch, "instrument": 417 + number, "velocity": 50,
                "instrument_source": {"acoustic": 0, "electronic": 1, "synthetic": 2}[source],
                "qualities_str": ["dark"],
            }
            number += 1
            write_tone(root / f"nsynth-{split}" / "audio" / f"{note_str}.wav", 440 * 2 ** ((pitch - 69) / 12) * 8)
        (root / f"nsynth-{split}" / "examples.json").write_text(json.dumps(examples, indent=4))
    return root


# --- GiantSteps key -----------------------------------------------------------------------------------

# real track ids of JukeMIR's split: MTG key set train and valid (the MANUAL KEY column), GiantSteps key test
GIANTSTEPS_MTG = [("5061", "D# minor", "2"), ("7217", "F minor", "2"), ("10359", "D minor", "2"),
                  ("11077", "G minor", "2"), ("14720", "D minor", "2"), ("33846", "C minor", "2"),
                  ("10981", "-", "0")]  # 10981: no key, left out of the split
GIANTSTEPS_KEY = [("10089", "D major"), ("1004923", "C minor"), ("1007941", "F minor")]


def write_giantsteps(root: Path) -> Path:
    mtg = root / "giantsteps-mtg-key-dataset"
    (mtg / "annotations").mkdir(parents=True, exist_ok=True)
    lines = ["ID\tMANUAL KEY\tC", *("\t".join(row) for row in GIANTSTEPS_MTG)]
    (mtg / "annotations" / "annotations.txt").write_text("\n".join(lines) + "\n")
    for track, key, _ in GIANTSTEPS_MTG:
        write_tone(mtg / "audio" / f"{track}.LOFI.mp3", 300 if "minor" in key else 600)
    key_set = root / "giantsteps-key-dataset"
    (key_set / "annotations" / "key").mkdir(parents=True, exist_ok=True)
    for track, key in GIANTSTEPS_KEY:
        (key_set / "annotations" / "key" / f"{track}.LOFI.key").write_text(key)  # no newline, as released
        write_tone(key_set / "audio" / f"{track}.LOFI.mp3", 300 if "minor" in key else 600)
    return root


# --- FMA-small ----------------------------------------------------------------------------------------

# (track_id, subset, split, genre_top)
FMA_TRACKS = [(2, "small", "training", "Hip-Hop"), (5, "small", "training", "Hip-Hop"),
              (10, "small", "training", "Pop"), (140, "small", "training", "Pop"), (141, "small", "validation", "Hip-Hop"),
              (148, "small", "validation", "Pop"), (182, "small", "test", "Hip-Hop"), (190, "small", "test", "Pop"),
              (3, "medium", "training", "Hip-Hop")]


def write_fma(root: Path) -> Path:
    """tracks.csv as pandas writes a two-level column index: group row, name row, index-name row."""
    columns = [("album", "comments"), ("album", "title"), ("artist", "name"), ("set", "split"), ("set", "subset"),
               ("track", "genre_top"), ("track", "genres"), ("track", "title")]
    (root / "fma_metadata").mkdir(parents=True, exist_ok=True)
    with open(root / "fma_metadata" / "tracks.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", *(group for group, _ in columns)])
        writer.writerow(["", *(name for _, name in columns)])
        writer.writerow(["track_id", *[""] * len(columns)])
        for track_id, subset, split, genre in FMA_TRACKS:
            writer.writerow([track_id, "0", "AWOL - A Way Of Life", "AWOL\nand friends", split, subset, genre, "[21]",
                             "Food"])
            if subset == "small":
                write_tone(root / "fma_small" / f"{track_id:06d}"[:3] / f"{track_id:06d}.mp3",
                           220 if genre == "Pop" else 880)
    return root


# --- Covers80 -----------------------------------------------------------------------------------------

COVERS80_SONGS = {
    "A_Whiter_Shade_Of_Pale": ("procol_harum+Greatest_Hits+01-A_Whiter_Shade_Of_Pale",
                               "annie_lennox+Medusa+03-A_Whiter_Shade_Of_Pale"),
    "Take_Me_To_The_River": ("talking_heads+Once_In_A_Lifetime+05-Take_Me_To_The_River",
                             "annie_lennox+Medusa+07-Take_Me_To_The_River"),
    "Happiness_is_a_warm_gun": ("beatles+The_White_Album_Disc_1+08-Happiness_Is_A_Warm_Gun",
                                "tori_amos+Strange_Little_Girls+06-Happiness_Is_A_Warm_Gun"),
}


def write_covers80(root: Path) -> Path:
    covers = root / "coversongs" / "covers32k"
    covers.mkdir(parents=True, exist_ok=True)
    for column, name in enumerate(("list1.list", "list2.list")):
        entries = [f"{song}/{versions[column]}" for song, versions in COVERS80_SONGS.items()]
        (covers / name).write_text("".join(f"{entry}\n" for entry in entries))
        for index, entry in enumerate(entries):
            write_tone(covers / f"{entry}.mp3", 200 * (index + 1) * (1.01 if column else 1.0))
    return root


# --- HEAR 2021 task folders ---------------------------------------------------------------------------

def write_hear_task(root: Path, name: str, split_mode: str = "trainvaltest", embedding_type: str = "scene",
                    rates: tuple[int, ...] = (16000, 22050)) -> Path:
    """A task folder as hear-preprocess's FinalCombine writes it (the audio at each rate, no tar)."""
    task = root / name
    folds = ["fold00", "fold01", "fold02"] if split_mode != "trainvaltest" else ["train", "valid", "test"]
    metadata = {
        "task_name": name.split("-")[0], "version": "v2.2.3", "embedding_type": embedding_type,
        "prediction_type": "multiclass", "split_mode": split_mode, "sample_duration": 4.0,
        "evaluation": ["top1_acc"], "splits": folds, "default_mode": "5h", "mode": "5h",
        **({"nfolds": 3} if split_mode == "new_split_kfold" else {}),
    }
    task.mkdir(parents=True, exist_ok=True)
    (task / "task_metadata.json").write_text(json.dumps(metadata, indent=True))
    (task / "labelvocabulary.csv").write_text("idx,label\n0,low\n1,high\n")
    for split in folds:
        labels = {}
        for i in range(4 if split == "train" or split_mode != "trainvaltest" else 2):
            label = "high" if i % 2 else "low"
            file = f"{split}_{i:03d}.wav"
            if embedding_type == "scene":
                labels[file] = [label]
            else:
                labels[file] = [{"label": label, "start": 120.0, "end": 480.0}]
            for rate in rates:
                write_tone(task / str(rate) / split / file, 880 if label == "high" else 220, rate=rate)
        (task / f"{split}.json").write_text(json.dumps(labels, indent=True))
    return task


def write_hear(root: Path) -> Path:
    """A tasks/ folder: a train/valid/test task, a 3-fold task and an event task (read, not scored)."""
    write_hear_task(root, "tones-v2.2.3-5h")
    write_hear_task(root, "tones_folds-v1.0-full", split_mode="new_split_kfold")
    write_hear_task(root, "tone_events-v1.0-full", embedding_type="event", rates=(16000,))
    return root
