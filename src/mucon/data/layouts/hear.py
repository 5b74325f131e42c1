"""HEAR 2021 task folders, as the HEAR preprocessing kit (hear-preprocess) writes them.

A task folder holds ``task_metadata.json`` (``task_name``, ``embedding_type`` scene or event,
``prediction_type`` multiclass or multilabel, ``split_mode`` trainvaltest / new_split_kfold /
presplit_kfold, ``splits``, ``evaluation``, ...), one ``<split>.json`` per split mapping each audio
file name to its labels (a list of label strings, or one string, for scene tasks; timed events for
event tasks), and the audio resampled to one or more rates, ``<rate>/<split>/<file>``. The layout reads the
highest rate present (mucon resamples to the model's rate when it decodes).

Scene tasks are benchmark tasks as they are: the split JSONs are the published lists and their
lengths the published counts. A trainvaltest task is one task; a k-fold task is k tasks, fold i the
test split, the next fold the valid split and the others train, as the HEAR evaluation kit does.
Event tasks (timestamped labels) are read for pretraining but not scored: mucon's probes score a
clip, not events in time.

Labels: ``split`` (the split's name: train, valid, test, or fold00 ...), ``label`` (a clip's labels
joined by ``;``; empty for event tasks).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import BenchmarkTask, Layout, LayoutOptions, Table, Track, require_files, subfolders

METADATA = "task_metadata.json"
RELEASE = "a task folder of the HEAR 2021 tasks (hear-preprocess output, hearbenchmark.com)"
TYPES = {"multiclass": "multiclass", "multilabel": "multilabel"}
METRICS = {"multiclass": "accuracy", "multilabel": "ROC-AUC and PR-AUC (macro; PR-AUC is HEAR's mAP)"}


REQUIRED_KEYS = ("task_name", "embedding_type", "prediction_type", "split_mode", "splits")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error


def _metadata(folder: Path) -> dict:
    metadata = _read_json(folder / METADATA)
    missing = [key for key in REQUIRED_KEYS if not isinstance(metadata, dict) or key not in metadata]
    if missing:
        raise ValueError(f"{folder / METADATA}: not a HEAR task_metadata.json (no {', '.join(missing)})")
    return metadata


def _rate_folder(folder: Path) -> str:
    rates = sorted((int(child.name) for child in subfolders(folder) if child.name.isdigit()), reverse=True)
    if not rates:
        raise FileNotFoundError(f"{folder}: no resampled audio (a folder named after its sample rate, e.g. 16000/, "
                                f"holding <split>/<file>.wav; from {RELEASE})")
    return str(rates[0])


def _split_labels(folder: Path, metadata: dict) -> dict[str, dict]:
    expected = [f"{split}.json" for split in metadata["splits"]]
    require_files(folder, f"HEAR {metadata['task_name']}", RELEASE, expected)
    splits = {}
    for split in metadata["splits"]:
        splits[split] = _read_json(folder / f"{split}.json")
        if not isinstance(splits[split], dict):
            raise ValueError(f"{folder / f'{split}.json'}: a HEAR split file is a JSON object mapping each audio file "
                             f"name to its labels, not a {type(splits[split]).__name__}")
    return splits


def _scene_labels(value) -> str:
    """A clip's labels joined by ';': a list holds several, a string (or a number) is one label."""
    return ";".join(str(item) for item in value) if isinstance(value, list) else str(value)


def _read(folder: Path, options: LayoutOptions) -> Table:
    require_files(folder, "HEAR task", RELEASE, [METADATA])
    metadata = _metadata(folder)
    rate = _rate_folder(folder)
    scene = metadata["embedding_type"] == "scene"
    tracks = []
    for split, labels in _split_labels(folder, metadata).items():
        for name, value in sorted(labels.items()):
            label = _scene_labels(value) if scene else ""
            tracks.append(Track(f"{rate}/{split}/{name}", labels=(split, label)))
    return Table("hear", ("split", "label"), tracks)


def _tasks(folder: Path) -> tuple[BenchmarkTask, ...]:
    metadata = _metadata(folder)
    if metadata["embedding_type"] != "scene" or metadata["prediction_type"] not in TYPES:
        return ()
    counts = {split: len(labels) for split, labels in _split_labels(folder, metadata).items()}
    kind = TYPES[metadata["prediction_type"]]
    metrics = f"{METRICS[kind]}; the HEAR kit reports {', '.join(metadata.get('evaluation', []))}"
    source = f"{folder.name}/{METADATA} and its split JSONs (HEAR 2021, {metadata.get('version', '?')})"
    if metadata["split_mode"] == "trainvaltest":
        return (BenchmarkTask(f"hear-{folder.name}", kind, "label", metrics, counts, source),)
    folds = sorted(metadata["splits"])
    tasks = []
    for i, fold in enumerate(folds):
        valid = folds[(i + 1) % len(folds)]
        train = sum(counts[other] for other in folds if other not in (fold, valid))
        tasks.append(BenchmarkTask(f"hear-{folder.name}-{fold}", kind, "label", metrics,
                                   {"train": train, "valid": counts[valid], "test": counts[fold]}, source,
                                   test_fold=fold))
    return tuple(tasks)


def task_folders(folder: Path) -> list[tuple[Path, tuple[BenchmarkTask, ...]]]:
    """The task folders at ``folder``: itself, or the folders in it that hold a task_metadata.json."""
    folders = [folder] if (folder / METADATA).is_file() else sorted(
        child for child in subfolders(folder) if (child / METADATA).is_file())
    if not folders:
        raise FileNotFoundError(f"{folder}: no HEAR task here: expected {METADATA}, or task folders holding one "
                                f"(from {RELEASE})")
    return [(task_folder, _tasks(task_folder)) for task_folder in folders]


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and (folder / METADATA).is_file()


HEAR = Layout(
    "hear", "a HEAR 2021 task folder: task_metadata.json, <split>.json, <rate>/<split>/<file>.wav", _detect, _read,
    dataset="HEAR 2021", release=RELEASE, task_folders=task_folders,
)
