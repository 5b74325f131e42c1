"""mucon's built-in corpus: rendered multitrack music with stems, labels and cover groups.

Built offline from real compositions (music21's bundled scores) and real instrument samples (the
Debian General MIDI soundfonts), the way Slakh2100 was built from MIDI, so every fresh machine can
make the music the demo, the tests and first experiments need: separate sources (MSCOL), labels
(SemiSupCon, probes) and several renditions of a piece (cover-song retrieval).

Layout of ``build_corpus(out_dir)``::

    metadata.csv                    one row per version: path (mixture, relative), split, piece, version,
                                    composer, key, tonic, mode, tempo, transpose, soundfont, setting,
                                    cover_group, tune_group, tune_retrieval, has_<source>, sources,
                                    stem_<source>, programs, families, duration, work
    mixtures/<version>.wav          the exact sum of the version's stems
    stems/<version>/<source>.wav    source in vocals, drums, bass, other; absent sources have no file
    parts.csv                       per rendered part: source, program, GM family, preset, gain
    notes/metadata.csv              single notes: path (relative to notes/), split, family, program,
                                    instrument, pitch, velocity, soundfont
    notes/audio/*.wav
    skipped.csv, README.md

Needs ``music21``, ``tinysoundfont`` (pip, --no-deps) and the Debian soundfont packages:
``scripts/install_corpus_deps.sh`` installs them.
"""

from .build import SIZES, CorpusReport, build_corpus
from .render import SoundfontMissing

__all__ = ["build_corpus", "CorpusReport", "SIZES", "SoundfontMissing"]
