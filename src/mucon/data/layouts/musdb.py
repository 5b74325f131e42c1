"""MUSDB18-HQ: one folder per track holding ``mixture.wav``, ``vocals.wav``, ``drums.wav``, ``bass.wav``, ``other.wav``.

The release puts the tracks in ``train/`` and ``test/``; that folder name is the ``split`` label
(tracks directly in the given folder have an empty split). The compressed MUSDB18 release
(``*.stem.mp4``) needs an MP4/AAC decoder that mucon's decoder (libsndfile) does not have, so it
is refused with a pointer to the HQ release.
"""

from __future__ import annotations

from pathlib import Path

from . import SOURCE_TYPES, Layout, LayoutOptions, Table, Track, stems_in_order, track_folders, unreadable_tracks

MIXTURE = "mixture.wav"


def _is_track(folder: Path) -> bool:
    return (folder / MIXTURE).is_file()


def _stem_mp4_files(folder: Path) -> list[Path]:
    return [*folder.glob("*.stem.mp4"), *folder.glob("*/*.stem.mp4")]


def _detect(folder: Path, options: LayoutOptions) -> bool:
    return options.metadata is None and bool(track_folders(folder, _is_track) or _stem_mp4_files(folder))


def _read(folder: Path, options: LayoutOptions) -> Table:
    unreadable: list = []
    tracks = []
    for split, track in track_folders(folder, _is_track, unreadable):
        relative = track.relative_to(folder).as_posix()
        stems = stems_in_order({source: [f"{relative}/{source}.wav"] for source in SOURCE_TYPES})
        tracks.append(Track(f"{relative}/{MIXTURE}", stems, (split,)))
    if not tracks:
        compressed = _stem_mp4_files(folder)
        if compressed:
            raise ValueError(
                f"{folder} holds the MUSDB18 .stem.mp4 release ({compressed[0].name}, ...); mucon has no decoder "
                "for MP4 stems: use the MUSDB18-HQ release (one folder of WAV files per track)"
            )
        raise FileNotFoundError(f"{folder}: no track folders with {MIXTURE} (MUSDB18-HQ layout)")
    return Table("musdb18hq", ("split",), sorted(tracks + unreadable_tracks(folder, unreadable, ("",))))


MUSDB18HQ = Layout("musdb18hq", "MUSDB18-HQ: <split>/<track>/{mixture,vocals,drums,bass,other}.wav", _detect, _read)
