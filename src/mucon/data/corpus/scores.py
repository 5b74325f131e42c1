"""Scores from music21's bundled corpus, reduced to plain note lists.

music21 objects are slow to build and heavy to pickle, so each score is parsed once, reduced to a
:class:`Score` of plain numbers (cached as JSON by the build) and never touched again: planning,
rendering and labelling all work on that reduction.
"""

from __future__ import annotations

import io
import re
import statistics
import warnings
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

MIN_NOTE_QL = 0.125
"""Zero-length notes (grace notes) sound for a 32nd note, so every note is heard and has an off."""

MAX_MEASURES = 96
"""Measures kept per part before parsing MusicXML. Only an opening excerpt is ever rendered, and
music21 needs minutes for a whole Beethoven quartet but a second or two for its first 96 bars."""

DEFAULT_VELOCITY = 80
"""Velocity before the first dynamic mark (about mf)."""

# Part names that say which voice leads and which carries the bass; matched on lower-case names.
_TOP = re.compile(r"\b(soprano|cantus|canto|superius|discantus|treble|s\.)|\bviolin\s*(1|i)\b|\b1st violin")
_BASS = re.compile(r"\b(bass|bassus|basso|violoncello|cello|contrabass)\b|\bb\.")
_VOICE = re.compile(r"\b(soprano|alto|altus|tenor|bass|bassus|basso|cantus|canto|quinto|quintus|"
                    r"sextus|superius|contratenor|discantus|voice|s\.|a\.|t\.|b\.)")

COMPOSERS = ("bach", "palestrina", "monteverdi", "trecento", "classical")
"""Composer classes: music21 corpus folders with enough polyphonic, multi-part scores. 'trecento'
is a repertoire (14th-century Italian masters: Landini, Jacopo, Ciconia...), labelled as one class;
so is 'classical' (see CLASS_FOLDERS)."""

CLASS_FOLDERS = {"classical": ("haydn", "mozart", "beethoven")}
"""Classes drawn from several music21 folders. music21 holds 9 Haydn, 16 Mozart and 22 Beethoven
works, nearly all string-quartet movements: too few for a class each once a third of the pieces go
to test (5 Mozart test pieces), and one genre, so a probe's Mozart/Beethoven errors measured the
scarcity more than the model. Together they are a class of 47, like Monteverdi's 48."""

_FORMAT_PREFERENCE = (".mxl", ".xml", ".musicxml", ".krn")
_SKIP_NAME = re.compile(r"_(old|bak)$")


class ScoreError(Exception):
    """A score that cannot be used; its message is the reason written to skipped.csv."""


@dataclass
class Candidate:
    """A corpus file that may become a piece."""
    piece: str
    composer: str
    work: str  # path relative to music21's corpus folder
    chorale: bool = False
    title: str = ""


@dataclass
class Part:
    name: str
    notes: list[list[float]]  # [onset_ql, duration_ql, midi_pitch, velocity], onset-sorted
    fermatas: list[float] = field(default_factory=list)  # onsets of notes under a fermata


@dataclass
class Bar:
    offset: float
    length: float  # what the bar holds (shorter than `full` for a pickup)
    full: float  # the time signature's bar length
    beat: float  # the time signature's beat, in quarter lengths


@dataclass
class Score:
    piece: str
    composer: str
    work: str
    title: str
    chorale: bool
    parts: list[Part]
    top: int  # index of the leading (top) voice
    bass: int | None  # index of the bass voice; None for a single part
    bars: list[Bar]
    marked_bpm: float | None  # the score's first metronome mark, in beats per minute

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Score":
        d = dict(d)
        d["parts"] = [Part(**p) for p in d["parts"]]
        d["bars"] = [Bar(**b) for b in d["bars"]]
        return cls(**d)

    @property
    def beat(self) -> float:
        return self.bars[0].beat if self.bars else 1.0

    @property
    def end(self) -> float:
        return max(n[0] + n[1] for p in self.parts for n in p.notes)


def corpus_root() -> Path:
    from music21 import common

    return Path(common.getCorpusFilePath())


def _piece_id(work: str) -> str:
    stem = work.rsplit(".", 1)[0] if Path(work).suffix in _FORMAT_PREFERENCE else work
    return re.sub(r"[^a-z0-9.]+", "-", stem.lower()).strip("-").replace("/", "-")


def candidates(composer: str) -> list[Candidate]:
    """Every usable file of a composer class, one per work, in a fixed order.

    Bach means the chorales (the tune groups need them, and music21 lists them). Elsewhere one file
    per work: the corpus holds some works twice (a .krn and an .mxl of one movement) and we prefer
    MusicXML; Roman-numeral analyses and superseded ('_old') or backup ('_bak') files are not scores.
    """
    from music21 import corpus

    if composer == "bach":
        from music21.corpus.chorales import ChoraleList

        titles = {str(d["bwv"]): d["title"] for d in ChoraleList().byBWV.values()}
        root = corpus_root()
        out = []
        for n in dict.fromkeys(corpus.chorales.Iterator(returnType="filename")):
            work = next((n + s for s in _FORMAT_PREFERENCE if (root / (n + s)).exists()), None)
            if work is None:  # music21 lists 'bwv18.5-l' for the file 'bwv18.5-lz.mxl'
                found = corpus.getWork(n)
                if not isinstance(found, Path):
                    continue
                work = str(found.relative_to(root))
            out.append(Candidate(_piece_id(work), "bach", work, True, titles.get(n.split("bwv", 1)[1], "")))
        return out
    root = corpus_root()
    by_work: dict[str, Path] = {}
    found = [p for folder in CLASS_FOLDERS.get(composer, (composer,)) for p in corpus.getComposer(folder)]
    for p in sorted(found):
        if p.suffix not in _FORMAT_PREFERENCE or _SKIP_NAME.search(p.stem):
            continue
        key = str(p.with_suffix(""))
        best = by_work.get(key)
        if best is None or _FORMAT_PREFERENCE.index(p.suffix) < _FORMAT_PREFERENCE.index(best.suffix):
            by_work[key] = p
    works = sorted(str(p.relative_to(root)) for p in by_work.values())
    return [Candidate(_piece_id(w), composer, w) for w in works]


def _truncated_musicxml(path: Path, max_measures: int) -> bytes:
    """The MusicXML document with each part cut to its first measures (see MAX_MEASURES)."""
    if path.suffix == ".mxl":
        with zipfile.ZipFile(path) as z:
            container = ET.fromstring(z.read("META-INF/container.xml"))
            rootfile = container.find(".//rootfile").get("full-path")
            data = z.read(rootfile)
    else:
        data = path.read_bytes()
    tree = ET.parse(io.BytesIO(data))
    for part in tree.getroot().iter("part"):
        for m in part.findall("measure")[max_measures:]:
            part.remove(m)
    out = io.BytesIO()
    tree.write(out, encoding="utf-8", xml_declaration=True)
    return out.getvalue()


def _load(work: str, max_measures: int):
    from music21 import converter, stream

    path = corpus_root() / work
    if path.suffix in (".mxl", ".xml", ".musicxml"):
        s = converter.parseData(_truncated_musicxml(path, max_measures), format="musicxml")
    else:
        s = converter.parse(path)
    if isinstance(s, stream.Opus):
        raise ScoreError("file holds several scores (an opus)")
    return s


def _part_notes(part) -> Part:
    """Notes of a part with ties merged, chords split, dynamics as velocities."""
    from music21 import chord, dynamics, expressions, note

    notes: list[list[float]] = []
    fermatas: list[float] = []
    open_ties: dict[int, int] = {}  # midi pitch -> index of the note a tie continues
    velocity = DEFAULT_VELOCITY
    for el in part.flatten():
        if isinstance(el, dynamics.Dynamic):
            if el.volumeScalar is not None:
                velocity = int(round(127 * (0.2 + 0.8 * el.volumeScalar)))
            continue
        if not isinstance(el, (note.Note, chord.Chord)):
            continue
        onset = float(el.offset)
        dur = max(float(el.quarterLength), MIN_NOTE_QL)
        if any(isinstance(e, expressions.Fermata) for e in el.expressions):
            fermatas.append(onset)
        for n in (el.notes if isinstance(el, chord.Chord) else (el,)):
            pitch = int(round(n.pitch.ps))
            tie = (n.tie or el.tie)
            if tie is not None and tie.type in ("stop", "continue") and pitch in open_ties:
                prev = notes[open_ties[pitch]]
                prev[1] = max(prev[1], onset + dur - prev[0])
                if tie.type == "stop":
                    del open_ties[pitch]
                continue
            notes.append([onset, dur, pitch, velocity])
            if tie is not None and tie.type == "start":
                open_ties[pitch] = len(notes) - 1
    notes.sort(key=lambda n: (n[0], n[2]))
    return Part(str(part.partName or part.id or ""), notes, fermatas)


def _bars(part) -> list[Bar]:
    from music21 import meter

    ts = part.recurse().getElementsByClass(meter.TimeSignature).first() or meter.TimeSignature("4/4")
    bars = []
    for m in part.getElementsByClass("Measure"):
        if m.timeSignature is not None:
            ts = m.timeSignature
        bars.append(Bar(float(m.offset), float(m.duration.quarterLength),
                        float(ts.barDuration.quarterLength), float(ts.beatDuration.quarterLength)))
    return bars


def _mean_pitch(p: Part) -> float:
    return statistics.fmean(n[2] for n in p.notes)


def pick_parts(parts: list[Part]) -> tuple[list[Part], int, int | None]:
    """Choose the parts to render and name the top and bass voices, by part name first.

    Chorales often add instruments that double the voices (horns, oboes, continuo); when a score has
    named voices, only those are sung or played, so no line is heard twice. Among the parts named
    as top (or bass) voices the highest (lowest) wins; without such names, pitch decides.
    """
    parts = [p for p in parts if p.notes]
    voices = [p for p in parts if _VOICE.search(p.name.lower())]
    if len(voices) >= 2:
        parts = voices
    if not parts:
        raise ScoreError("no notes")
    mean = [_mean_pitch(p) for p in parts]
    idx = range(len(parts))
    tops = [i for i in idx if _TOP.search(parts[i].name.lower())] or list(idx)
    top = max(tops, key=lambda i: mean[i])
    if len(parts) == 1:
        return parts, top, None
    basses = [i for i in idx if i != top and _BASS.search(parts[i].name.lower())]
    bass = min(basses or [i for i in idx if i != top], key=lambda i: mean[i])
    return parts, top, bass


def drop_leading_rests(parts: list[Part], bars: list[Bar]) -> tuple[list[Part], list[Bar]]:
    """The parts and bars from the bar of the first note on: some Trecento pieces open with a dozen
    bars of rest in every part, and an opening excerpt of those would be silence."""
    first = min(p.notes[0][0] for p in parts)
    start = max((b.offset for b in bars if b.offset <= first + 1e-9), default=0.0)
    if start <= 0:
        return parts, bars
    moved = [Part(p.name, [[n[0] - start, *n[1:]] for n in p.notes], [f - start for f in p.fermatas]) for p in parts]
    return moved, [Bar(b.offset - start, b.length, b.full, b.beat) for b in bars if b.offset >= start]


def parse(c: Candidate, max_measures: int = MAX_MEASURES) -> Score:
    """Parse a candidate into a :class:`Score`; raises :class:`ScoreError` with the reason."""
    from music21 import tempo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            s = _load(c.work, max_measures)
        except ScoreError:
            raise
        except Exception as e:  # music21 raises many kinds on malformed files
            raise ScoreError(f"parse failed: {type(e).__name__}: {e}"[:300]) from e
        if not s.parts:
            raise ScoreError("no parts")
        parts, top, bass = pick_parts([_part_notes(p) for p in s.parts])
        parts, bars = drop_leading_rests(parts, _bars(s.parts[0]))
        marked = None
        mm = s.recurse().getElementsByClass(tempo.MetronomeMark).first()
        if mm is not None and mm.number is not None and bars:
            bpm = mm.getQuarterBPM() / bars[0].beat
            marked = float(bpm) if 40 <= bpm <= 200 else None
        title = c.title or (s.metadata.title if s.metadata and s.metadata.title else "")
    return Score(c.piece, c.composer, c.work, str(title), c.chorale, parts, top, bass, bars, marked)


def excerpt_end(score: Score, max_ql: float) -> float:
    """End of the opening excerpt, in quarter lengths: the last bar line within max_ql, so an
    excerpt stops where the music breathes; mid-bar only when a single bar is longer than max_ql."""
    end = min(max_ql, score.end)
    bar_ends = [b.offset + b.length for b in score.bars if b.offset + b.length <= end + 1e-9]
    return bar_ends[-1] if bar_ends and bar_ends[-1] > 0 else end




def estimate_key(score: Score, end_ql: float) -> tuple[int, str]:
    """(tonic pitch class, 'major'|'minor') of the excerpt heard.

    music21's default key analysis (Krumhansl-Schmuckler correlation with Aarden-Essen weights)
    applied to the duration-weighted pitch classes of the excerpt rather than the whole file: a
    long movement may modulate away from what the first seconds play. Checked against the final
    bass note and key signature of 125 chorales it is right on 113, the plain Krumhansl-Kessler
    profiles on 102.
    """
    import numpy as np
    from music21.analysis.discrete import AardenEssen

    hist = np.zeros(12)
    for p in score.parts:
        for on, dur, pitch, _ in p.notes:
            if on < end_ql:
                hist[int(pitch) % 12] += min(dur, end_ql - on)
    if np.count_nonzero(hist) < 2:
        raise ScoreError(f"the excerpt (to quarter {end_ql:g}) holds fewer than two pitch classes: no key")
    weights = AardenEssen()
    best = (-2.0, 0, "major")
    for mode in ("major", "minor"):
        profile = np.asarray(weights.getWeights(mode))
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]
