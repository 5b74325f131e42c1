"""The README written into every built corpus: what it holds, how it was made, whose work it is."""

from __future__ import annotations


def _table(counts: dict[str, int], name: str) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return f"| {name} | count |\n|---|---|\n{rows}\n"


def readme_text(report, spec) -> str:
    labels = report.labels
    sections = "\n".join(f"### {k}\n\n{_table(v, k)}" for k, v in labels.items())
    balance = ("Pieces per class: " + ", ".join(f"{k} {v}" for k, v in spec.pieces.items()) + "."
               if spec.pieces else "Every usable score (classes are not balanced).")
    tunes_first = ("the chorales, those that share a tune with another chorale first" if spec.title_groups
                   else "the chorales")
    versions = (f"{spec.versions} per piece" if isinstance(spec.versions, int) else
                "per piece: " + ", ".join(f"{k} {v}" for k, v in spec.versions.items())
                + ";\n   classes with fewer pieces get more versions, so every class has about as many")
    return f"""# mucon built-in corpus ({report.size})

Rendered multitrack music with stems, labels and cover groups, made offline by
`mucon corpus build` (seed {report.seed}, {report.sample_rate} Hz, mono, 16-bit WAV). The same seed,
soundfonts and software give byte-identical files.

{report.pieces} pieces, {report.versions} versions, {report.stems} stems, {report.cover_groups} cover
groups (a piece's versions), {report.tune_groups} tune groups of two or more chorales, {report.notes}
single notes: {report.mixture_hours:.2f} hours of mixtures and {report.note_hours:.2f} hours of notes.

## How it was made

1. **Scores**: music21's bundled corpus. Bach: {tunes_first};
   the other classes: the corpus folders of Palestrina, Monteverdi, the Trecento masters (one class,
   `trecento`) and the string quartets of Haydn, Mozart and Beethoven (one class, `classical`:
   music21 holds too few of each for a class of its own), one file per work, MusicXML preferred.
   {balance}
   Scores that fail to parse, or whose excerpt holds fewer than two pitch classes (no key), are
   listed in `skipped.csv` and the next score of the class is taken. Bars of rest before the first
   note are dropped. Parts are chosen by name (chorales' doubling instruments are dropped) and the
   top and bass voices found by name, then by pitch. Ties are merged, grace notes last a 32nd note,
   dynamics become velocities.
2. **Excerpts**: the opening bars of each piece, cut at a bar line so the slowest version lasts at
   most {spec.max_seconds:g} s, plus a 1 s release tail.
3. **Versions** ({versions}).
   Each differs in soundfont ({", ".join(report.soundfonts)}), ensemble setting (band, chamber,
   choir, keyboard), GM programs, tempo (+-15 %, the first version at the base tempo) and
   transposition (the first version in the original key). The top voice is
   sometimes sung (Choir Aahs / Voice Oohs: `vocals`), the lowest line goes to a bass or low string
   (`bass`), inner voices are `other`, and some versions add a GM drum part (`drums`).
4. **Rendering**: tinysoundfont renders every part on its own; parts are levelled, summed into one
   stem per source, and the mixture is written as the exact sum of the written 16-bit stems.
5. **Labels**: composer; key (music21's Krumhansl-Schmuckler/Aarden-Essen estimate on the excerpt,
   moved by the transposition); tempo in beats per minute (the beat of the time signature); the
   programs and GM families present (per part in `parts.csv`); source presence (`has_<source>`, and
   `sources` joined by `;`); `cover_group` (all versions of a piece) and `tune_group` (chorales
   whose soprano openings are the same tune, compared as key-free interval sequences);
   `tune_retrieval` repeats `tune_group` on one version per chorale, drawn per piece, so that tune
   retrieval looks for other harmonisations of a tune rather than other versions of one.
6. **Splits**: by piece and by tune group (nothing crosses train/valid/test), 60/10/30 stratified
   by composer, with tune groups of two or more chorales dealt as a class of their own so the test
   split holds several; single notes split by GM program, 5/1/2 per family of 8 (test holds two
   unseen instruments of every family).

## Layout

- `metadata.csv`: one row per version; `path` is the mixture relative to this folder.
- `mixtures/<version>.wav`, `stems/<version>/<vocals|drums|bass|other>.wav` (absent sources have no file).
- `parts.csv`: every rendered part (program, GM family, soundfont preset, gain).
- `notes/metadata.csv` and `notes/audio/*.wav`: single notes (2 s, note-off at 1.5 s); `path` is
  relative to `notes/`, so that folder can be prepared on its own.
- `skipped.csv`: scores, versions, parts or notes left out, with the reason.
- `.cache/`: parsed scores and per-item rows that make an interrupted build resumable.

## Counts

{sections}
## Licences

- Scores: music21's corpus (music21 is BSD-3-Clause). music21 notes that it does not own most
  of the corpus music: it is licensed to the project or freely distributable, to the best of its
  knowledge in the US. The works are centuries old and in the public domain; the encodings belong
  to their encoders (see each file's metadata and music21's corpus documentation).
- FluidR3_GM (Debian `fluid-soundfont-gm`): MIT licence, Frank Wen and contributors.
- MuseScore_General (Debian `musescore-general-soundfont-small`): MIT, with parts public domain or
  CC0 (S. Christian Collins; based on FluidR3 Mono).
- TimGM6mb (Debian `timgm6mb-soundfont`): GPL-2, Tim Brechbill.

Audio rendered from these soundfonts is a performance of public-domain scores; check the soundfont
licences before redistributing the audio.
"""
