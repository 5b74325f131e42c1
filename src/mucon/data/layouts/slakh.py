"""Slakh2100: ``TrackNNNNN/mix.flac``, ``TrackNNNNN/stems/SNN.flac`` and ``TrackNNNNN/metadata.yaml``.

The release puts the tracks in ``train/``, ``validation/`` and ``test/`` (the redux release also
``omitted/``); that folder name is the ``split`` label. Each entry of ``metadata.yaml``'s ``stems:``
mapping describes one rendered instrument (``inst_class``, ``is_drum``, ``program_num``,
``audio_rendered``, ...). Stems with ``audio_rendered: false`` have no audio and are absent; the
others are mapped onto the four source types and summed per type:

1. ``is_drum: true`` -> drums
2. ``program_num`` 52, 53, 54 (General MIDI, 0-based: Choir Aahs, Voice Oohs, Synth Voice) -> vocals
3. ``inst_class: Bass`` -> bass
4. anything else -> other

A mapping file (YAML or JSON, ``--stem-map``) overrides any part of it::

    is_drum: drums              # the type of drum stems
    program_num: {52: other}    # per General MIDI program, merged over the defaults above
    inst_class: {Organ: bass}   # per Slakh instrument class, merged over the defaults above
    default: other              # everything else
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from . import SOURCE_TYPES, Layout, LayoutOptions, Table, Track, stems_in_order, track_folders, unreadable_tracks

MIX = "mix.flac"
METADATA = "metadata.yaml"
_TRACK_NAME = re.compile(r"Track\d+")

DEFAULT_STEM_MAP = {
    "is_drum": "drums",
    "program_num": {52: "vocals", 53: "vocals", 54: "vocals"},
    "inst_class": {"Bass": "bass"},
    "default": "other",
}


def load_stem_map(path: Path | None) -> dict:
    """The default mapping with the user's file merged over it; every target must be a source type."""
    mapping = {key: dict(value) if isinstance(value, dict) else value for key, value in DEFAULT_STEM_MAP.items()}
    if path is None:
        return mapping
    try:
        given = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not YAML/JSON ({error})") from error
    if not isinstance(given, dict) or set(given) - set(DEFAULT_STEM_MAP):
        raise ValueError(f"{path}: a stem map is a mapping with keys {', '.join(DEFAULT_STEM_MAP)}")
    for key, value in given.items():
        if isinstance(mapping[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"{path}: {key} must map values to source types")
            mapping[key].update({int(k) if key == "program_num" else str(k): v for k, v in value.items()})
        else:
            mapping[key] = value
    targets = [mapping["is_drum"], mapping["default"], *mapping["program_num"].values(), *mapping["inst_class"].values()]
    unknown = sorted({str(target) for target in targets} - set(SOURCE_TYPES))
    if unknown:
        raise ValueError(f"{path}: unknown source types {unknown}; use {', '.join(SOURCE_TYPES)}")
    return mapping


def source_type(stem: dict, mapping: dict) -> str:
    """The source type of one ``stems:`` entry of metadata.yaml."""
    if stem.get("is_drum"):
        return mapping["is_drum"]
    program = stem.get("program_num")
    if program is not None and int(program) in mapping["program_num"]:
        return mapping["program_num"][int(program)]
    return mapping["inst_class"].get(str(stem.get("inst_class")), mapping["default"])


def _is_track(folder: Path) -> bool:
    return _TRACK_NAME.fullmatch(folder.name) is not None and (folder / METADATA).is_file()


def _track(folder: Path, split: str, track: Path, mapping: dict) -> Track:
    relative = track.relative_to(folder).as_posix()
    mix = f"{relative}/{MIX}"
    try:
        metadata = yaml.load((track / METADATA).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        entries = metadata["stems"]
        audio_dir = metadata.get("audio_dir") or "stems"
        stems: dict[str, list[str]] = {}
        for name in sorted(entries):
            if entries[name].get("audio_rendered", True):
                stems.setdefault(source_type(entries[name], mapping), []).append(f"{relative}/{audio_dir}/{name}.flac")
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as error:
        return Track(mix, labels=(split,), problem=("bad metadata", f"{relative}/{METADATA}: {error!r}"))
    return Track(mix, stems_in_order(stems), (split,))


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and bool(track_folders(folder, _is_track))


def _read(folder: Path, options: LayoutOptions) -> Table:
    mapping = load_stem_map(options.stem_map)
    unreadable: list = []
    tracks = [_track(folder, split, track, mapping) for split, track in track_folders(folder, _is_track, unreadable)]
    if not tracks:
        raise FileNotFoundError(f"{folder}: no TrackNNNNN folders with {METADATA} (Slakh2100 layout)")
    return Table("slakh2100", ("split",), sorted(tracks + unreadable_tracks(folder, unreadable, ("",))))


SLAKH2100 = Layout("slakh2100", "Slakh2100: <split>/TrackNNNNN/{mix.flac,metadata.yaml,stems/SNN.flac}", _detect, _read)
