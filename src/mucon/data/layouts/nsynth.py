"""NSynth: ``nsynth-{train,valid,test}/examples.json`` and ``nsynth-<split>/audio/<note_str>.wav``.

Each release archive (``nsynth-<split>.jsonwav.tar.gz``) unpacks to one such folder; its split is the
folder's. ``examples.json`` maps a note's ``note_str`` to its annotations, of which the layout reads
``pitch`` (MIDI number) and ``instrument_family_str`` (bass, brass, flute, guitar, keyboard, mallet,
organ, reed, string, synth_lead, vocal).

Labels: ``split``, ``pitch``, ``instrument_family``.
"""

from __future__ import annotations

import json
from pathlib import Path

from mucon.data.labels import SPLITS

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, require_files

RELEASE = ("NSynth v2.2.3: nsynth-train, nsynth-valid and nsynth-test .jsonwav.tar.gz, unpacked, "
           "https://magenta.tensorflow.org/datasets/nsynth")
SOURCE = "the release's own split (nsynth-train/valid/test, NSynth v2.2.3)"
COUNTS = {"train": 289205, "valid": 12678, "test": 4096}


def _examples(folder: Path, split: str) -> Path:
    return folder / f"nsynth-{split}" / "examples.json"


def _read(folder: Path, options: LayoutOptions) -> Table:
    require_files(folder, "NSynth", RELEASE, [f"nsynth-{split}/examples.json" for split in SPLITS])
    tracks = []
    for split in SPLITS:
        try:
            examples = json.loads(_examples(folder, split).read_text())
            for note, annotations in sorted(examples.items()):
                tracks.append(Track(f"nsynth-{split}/audio/{note}.wav",
                                    labels=(split, str(annotations["pitch"]), annotations["instrument_family_str"])))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"{_examples(folder, split)}: not NSynth's examples.json ({error!r})") from error
    return Table("nsynth", ("split", "pitch", "instrument_family"), tracks)


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and any(_examples(folder, split).is_file() for split in SPLITS)


NSYNTH = Layout(
    "nsynth", "NSynth: nsynth-{train,valid,test}/examples.json and audio/", _detect, _read,
    dataset="NSynth", release=RELEASE,
    tasks=(
        BenchmarkTask("nsynth-pitch", "multiclass", "pitch", "accuracy over MIDI pitch", COUNTS, SOURCE),
        BenchmarkTask("nsynth-instrument", "multiclass", "instrument_family", "accuracy over the 11 instrument "
                      "families", COUNTS, SOURCE),
    ),
)
