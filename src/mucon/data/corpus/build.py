"""Build the corpus: select and parse scores, group tunes, split, plan, render, label.

Every step is a pure function of (size, seed, sample rate, soundfonts) and of the item it works on,
so a build can stop anywhere and start again: parsed scores are cached as JSON, each version and
each batch of notes writes its audio atomically (``mucon.files.write_atomically``) and then a small
JSON row, and an item whose row and files exist is never redone. The tables are assembled from those rows at the end.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import soundfile as sf

from mucon.data.labels import PITCH_CLASS_NAMES, SPLITS
from mucon.files import write_atomically

from . import notes as N
from .gm import family
from .render import find_soundfonts, render_version, soundfont_name
from .rng import item_rng
from .scores import COMPOSERS, Candidate, Score, ScoreError, candidates, parse
from .splits import PIECE_PATTERN, PROGRAM_PATTERN, assign
from .tunes import tune_groups
from .versions import SOURCES, VersionPlan, plan_versions

FORMAT = 2
"""Bumped when the layout or the rendering changes, so an old build is not resumed into a new one."""

VERSION_COLUMNS = (
    "path", "split", "piece", "version", "composer", "key", "tonic", "mode", "tempo", "transpose",
    "soundfont", "setting", "cover_group", "tune_group", "tune_retrieval", "has_vocals", "has_drums", "has_bass",
    "has_other", "sources", "stem_vocals", "stem_drums", "stem_bass", "stem_other", "programs", "families",
    "duration", "work")
PART_COLUMNS = ("version", "part", "name", "role", "source", "program", "kit", "family", "preset",
                "gain_db", "notes")
NOTE_COLUMNS = ("path", "split", "family", "program", "instrument", "pitch", "velocity", "soundfont")


@dataclass(frozen=True)
class Size:
    pieces: dict[str, int] | None  # composer -> pieces; None: every piece of COMPOSERS
    title_groups: bool  # put chorales of one tune first (see _tunes_first); full has every chorale anyway
    versions: int | dict[str, int]  # per piece, or per piece of each composer
    max_seconds: float  # longest excerpt (at the slowest version's tempo)
    note_programs: tuple[int, ...]
    note_soundfonts: int | None  # how many soundfonts play single notes; None: all
    notes_per_program: int | None  # random (pitch, velocity) pairs per program; None: the grid
    note_pitch_step: int = 3

    def versions_of(self, composer: str) -> int:
        return self.versions if isinstance(self.versions, int) else self.versions[composer]


SIZES = {
    # For tests: two chorales of one tune and two other composers.
    "small": Size(pieces={"bach": 2, "palestrina": 1, "trecento": 1}, title_groups=True, versions=3,
                  max_seconds=8.0, note_programs=(0, 1, 40, 41, 42, 56, 57), note_soundfonts=1,
                  notes_per_program=1),
    # For the demo, sized as a measuring instrument: about 290 test versions from about 120 test
    # pieces (30% of the pieces go to test), so a test accuracy near 0.5 is known to +-0.06, and 288
    # test notes. Monteverdi and the classical quartets hold only 48 and 47 works in music21, so
    # their pieces come in 4 versions and the others' in 2: every class has about 190 versions and
    # chance stays 1 in 5. Short excerpts keep the audio to about 3 hours, embedded once per model.
    "default": Size(pieces={"bach": 96, "palestrina": 96, "trecento": 96, "monteverdi": 48, "classical": 48},
                    title_groups=True,
                    versions={"bach": 2, "palestrina": 2, "trecento": 2, "monteverdi": 4, "classical": 4},
                    max_seconds=10.0, note_programs=tuple(range(128)), note_soundfonts=None, notes_per_program=3),
    # Everything music21 holds for the composer classes (classes unbalanced; Palestrina dominates).
    "full": Size(pieces=None, title_groups=False, versions=4, max_seconds=30.0,
                 note_programs=tuple(range(128)), note_soundfonts=None, notes_per_program=None),
}


@dataclass
class CorpusReport:
    """What a build made: counts, label distributions, time and size on disk."""
    out_dir: Path
    size: str
    seed: int
    sample_rate: int
    soundfonts: list[str]
    pieces: int = 0
    versions: int = 0
    stems: int = 0
    cover_groups: int = 0
    tune_groups: int = 0  # groups of two or more chorales
    notes: int = 0
    mixture_hours: float = 0.0
    note_hours: float = 0.0
    skipped: int = 0
    seconds: float = 0.0
    bytes: int = 0
    labels: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"corpus {self.out_dir} (size={self.size}, seed={self.seed}, {self.sample_rate} Hz)",
                 f"  {self.pieces} pieces, {self.versions} versions, {self.stems} stems, "
                 f"{self.cover_groups} cover groups, {self.tune_groups} tune groups, {self.notes} notes, "
                 f"{self.skipped} skipped",
                 f"  {self.mixture_hours:.2f} h of mixtures, {self.note_hours:.2f} h of notes",
                 f"  {self.seconds:.0f} s, {self.bytes / 1e6:.0f} MB"]
        lines += [f"  {k}: " + ", ".join(f"{c}={n}" for c, n in v.items()) for k, v in self.labels.items()]
        return "\n".join(lines)


# ---- files -------------------------------------------------------------------------------------

def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda handle: handle.write(json.dumps(obj, sort_keys=True)), mode="w")


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda handle: sf.write(handle, audio, sample_rate, subtype="PCM_16", format="WAV"))


def _write_csv(path: Path, columns: Iterable[str], rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(handle) -> None:
        w = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)

    write_atomically(path, write, mode="w")


def _complete(row_file: Path, root: Path) -> dict | None:
    """The cached row of an item when it and every file it names exist, else None."""
    if not row_file.exists():
        return None
    row = json.loads(row_file.read_text())
    return row if all((root / p).exists() for p in row["files"]) else None


# ---- jobs (run in worker processes) ------------------------------------------------------------

def _parse_job(c: Candidate, cache: Path) -> dict:
    path = cache / "scores" / f"{c.piece}.json"
    if path.exists():
        return json.loads(path.read_text())
    try:
        result = {"score": parse(c).to_json()}
    except ScoreError as e:
        result = {"error": str(e)}
    _write_json(path, result)
    return result


def _render_job(score: Score, plan: VersionPlan, out: Path, sample_rate: int, seed: int) -> dict:
    row_file = out / ".cache" / "versions" / f"{plan.version_id}.json"
    done = _complete(row_file, out)
    if done is not None:
        return done
    try:
        rv = render_version(score, plan, sample_rate, seed)
    except Exception as e:  # a failed render skips the version, it does not stop the build
        return {"error": f"render failed: {type(e).__name__}: {e}"[:300], "version": plan.version_id}
    mix_path = f"mixtures/{plan.version_id}.wav"
    stem_paths = {s: f"stems/{plan.version_id}/{s}.wav" for s in rv.stems}
    for s, audio in rv.stems.items():
        _write_wav(out / stem_paths[s], audio, sample_rate)
    _write_wav(out / mix_path, rv.mixture, sample_rate)
    programs = sorted({p["program"] for p in rv.parts})
    row = {
        "path": mix_path, "piece": plan.piece, "version": plan.version_id, "composer": score.composer,
        "key": f"{PITCH_CLASS_NAMES[plan.tonic]} {plan.mode}", "tonic": PITCH_CLASS_NAMES[plan.tonic],
        "mode": plan.mode, "tempo": plan.bpm, "transpose": plan.transpose,
        "soundfont": soundfont_name(Path(plan.soundfont)), "setting": plan.setting,
        **{f"has_{s}": int(s in rv.stems) for s in SOURCES},
        "sources": ";".join(s for s in SOURCES if s in rv.stems),
        **{f"stem_{s}": stem_paths.get(s, "") for s in SOURCES},
        "programs": ";".join(map(str, programs)),
        "families": ";".join(sorted({family(p) for p in programs})),
        "duration": round(len(rv.mixture) / sample_rate, 3), "work": score.work,
        "parts": [{"version": plan.version_id, **p} for p in rv.parts], "dropped": rv.dropped,
        "files": [mix_path, *stem_paths.values()],
    }
    _write_json(row_file, row)
    return row


def _notes_job(plan: N.NotePlan, out: Path, sample_rate: int) -> dict:
    notes_dir = out / "notes"
    row_file = out / ".cache" / "notes" / f"{soundfont_name(Path(plan.soundfont))}-{plan.program:03d}.json"
    done = _complete(row_file, notes_dir)
    if done is not None:
        return done
    rows, silent = [], []
    instrument = N.synth(Path(plan.soundfont), sample_rate).preset_name(plan.program)
    for (pitch, velocity), audio in zip(plan.items, N.render_notes(plan, sample_rate)):
        rel = N.note_file(plan, pitch, velocity)
        if audio is None:
            silent.append(rel)
            continue
        _write_wav(notes_dir / rel, audio, sample_rate)
        rows.append({"path": rel, "family": family(plan.program), "program": plan.program, "instrument": instrument,
                     "pitch": pitch, "velocity": velocity, "soundfont": soundfont_name(Path(plan.soundfont))})
    result = {"rows": rows, "silent": silent, "files": [r["path"] for r in rows]}
    _write_json(row_file, result)
    return result


# ---- orchestration -----------------------------------------------------------------------------

class _Runner:
    """Runs jobs in a process pool (or inline for one worker) and returns results in job order."""

    def __init__(self, workers: int, progress: bool):
        self.pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
        self.progress = progress

    def map(self, fn: Callable, jobs: list[tuple], desc: str) -> list:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=desc, disable=not self.progress or not jobs, leave=False)
        if self.pool is None:
            results = []
            for args in jobs:
                results.append(fn(*args))
                bar.update()
        else:
            futures = {self.pool.submit(fn, *args): i for i, args in enumerate(jobs)}
            results = [None] * len(jobs)
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update()
        bar.close()
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _selection_order(composer: str, seed: int) -> list[Candidate]:
    """A composer's candidates in the order they are tried, shuffled by the seed."""
    cands = candidates(composer)
    return [cands[i] for i in item_rng(seed, "select", composer).permutation(len(cands))]


def _tunes_first(order: list[Candidate], want: int, cache: Path, runner: _Runner) -> list[Candidate]:
    """Chorales reordered so that whole tune groups come first, so that even a few chorales hold
    real cover groups and a large selection holds many. Finding tunes needs parsed melodies; to
    avoid parsing all 350 chorales, only a pool of three times the chorales wanted is parsed:
    first chorales whose titles recur (music21's chorale list), which usually share a tune, then
    the others in selection order; melodies then decide (they also find same-tune chorales with
    other texts)."""
    by_title: dict[str, list[Candidate]] = {}
    for c in order:
        if c.title:
            by_title.setdefault(c.title, []).append(c)
    pool: list[Candidate] = []
    for group in (g for g in by_title.values() if len(g) > 1):
        if len(pool) >= 3 * want:
            break
        pool += group
    in_pool = {c.piece for c in pool}
    pool += [c for c in order if c.piece not in in_pool][:max(0, 3 * want - len(pool))]
    parsed = runner.map(_parse_job, [(c, cache) for c in pool], "parse chorale pool")
    scores = [Score.from_json(r["score"]) for r in parsed if "score" in r]
    groups: dict[str, list[str]] = {}
    for piece, tune in tune_groups(scores).items():
        groups.setdefault(tune, []).append(piece)
    rank = {c.piece: i for i, c in enumerate(order)}
    shared = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: min(rank[p] for p in g))
    first = [p for g in shared for p in sorted(g, key=rank.get)]
    by_piece = {c.piece: c for c in order}
    return [by_piece[p] for p in first] + [c for c in order if c.piece not in set(first)]


def _select_and_plan(size: Size, seed: int, cache: Path, runner: _Runner,
                     plan: Callable[[Score], list[VersionPlan]]) -> tuple[list[Score], list[VersionPlan], list[dict]]:
    """Parse and plan candidates in selection order until each composer has its count (a score
    that fails to parse, or whose excerpt has no key, is skipped and the next one tried), so
    classes stay balanced."""
    composers = list(size.pieces) if size.pieces else list(COMPOSERS)
    orders = {c: _selection_order(c, seed) for c in composers}
    want = {c: (size.pieces[c] if size.pieces else len(orders[c])) for c in composers}
    if size.title_groups and "bach" in orders:
        orders["bach"] = _tunes_first(orders["bach"], want["bach"], cache, runner)
    chosen: dict[str, list[Score]] = {c: [] for c in composers}
    plans: dict[str, list[VersionPlan]] = {}
    pos = dict.fromkeys(composers, 0)
    skipped = []
    while True:
        batch = []
        for c in composers:
            take = orders[c][pos[c]:pos[c] + max(0, want[c] - len(chosen[c]))]
            pos[c] += len(take)
            batch += take
        if not batch:
            break
        for cand, res in zip(batch, runner.map(_parse_job, [(b, cache) for b in batch], "parse")):
            try:
                if "error" in res:
                    raise ScoreError(res["error"])
                score = Score.from_json(res["score"])
                plans[score.piece] = plan(score)
                chosen[cand.composer].append(score)
            except ScoreError as e:
                skipped.append({"kind": "score", "item": cand.work, "reason": str(e)})
    scores = [s for c in composers for s in chosen[c]]
    return scores, [p for s in scores for p in plans[s.piece]], skipped


def _unit_classes(scores: list[Score], units: dict[str, str]) -> dict[str, str]:
    """unit -> the class its split is stratified by: the composer, and for chorales that share a
    tune a class of their own, so tune groups spread over the splits like pieces do and the test
    split holds several (tune retrieval needs them)."""
    members = Counter(units.values())
    return {units[s.piece]: s.composer + (" tune groups" if members[units[s.piece]] > 1 else "") for s in scores}


def _mark_tune_queries(rows: list[dict], seed: int) -> None:
    """Set ``tune_retrieval`` (the tune group) on one version per chorale, drawn per piece, and
    leave it empty elsewhere. Tune retrieval then finds other harmonisations of a tune, in other
    arrangements, instead of other versions of the same harmonisation (that is cover retrieval)."""
    by_piece: dict[str, list[dict]] = {}
    for r in rows:
        r["tune_retrieval"] = ""
        if r["tune_group"]:
            by_piece.setdefault(r["piece"], []).append(r)
    for piece, versions in by_piece.items():
        versions.sort(key=lambda r: r["version"])
        chosen = versions[int(item_rng(seed, "tune query", piece).integers(len(versions)))]
        chosen["tune_retrieval"] = chosen["tune_group"]


def _pieces_per_tune(rows: list[dict]) -> Counter:
    """(tune group, split) -> chorales in it (a tune group never spans splits)."""
    return Counter((t, split) for t, split in {r["piece"]: (r["tune_group"], r["split"]) for r in rows}.values() if t)


def _check_config(out: Path, config: dict) -> None:
    path = out / ".cache" / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != config:
            raise ValueError(f"{out} holds a corpus built with {old}; this build asks for {config}. "
                             "Use another folder, or delete this one.")
    else:
        _write_json(path, config)


def build_corpus(out_dir: str | os.PathLike, size: str = "default", sample_rate: int = 22050, seed: int = 0,
                 soundfonts: list[str | os.PathLike] | None = None, progress: bool = True,
                 workers: int | None = None) -> CorpusReport:
    """Build (or finish building) the corpus in ``out_dir``; see the package docstring for the layout.

    ``size``: 'small' (tests, seconds), 'default' (demo: about 950 versions, minutes) or 'full'.
    ``soundfonts``: .sf2/.sf3 files; default the Debian GM soundfonts. ``workers``: processes
    (default: up to 2); results do not depend on it. Workers are spawned, so a script that calls
    this at top level needs the usual ``if __name__ == "__main__":`` guard.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, not {size!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or not 8000 <= sample_rate <= 192000:
        raise ValueError(f"the sample rate must be a whole number of Hz from 8000 to 192000 (lower aliases most of "
                         f"the instruments' range), got {sample_rate!r}")
    t0 = time.time()
    spec = SIZES[size]
    out = Path(out_dir)
    fonts = [str(p) for p in find_soundfonts(soundfonts)]
    out.mkdir(parents=True, exist_ok=True)
    _check_config(out, {"format": FORMAT, "size": size, "seed": seed, "sample_rate": sample_rate,
                        "soundfonts": [soundfont_name(Path(f)) for f in fonts]})
    cache = out / ".cache"
    runner = _Runner(workers or min(2, os.cpu_count() or 1), progress)
    try:
        scores, plans, skipped = _select_and_plan(
            spec, seed, cache, runner,
            lambda s: plan_versions(s, spec.versions_of(s.composer), fonts, seed, spec.max_seconds))
        tunes = tune_groups(scores)
        units = {s.piece: tunes.get(s.piece, s.piece) for s in scores}
        unit_split = assign(_unit_classes(scores, units), seed, PIECE_PATTERN, "piece")
        by_piece = {s.piece: s for s in scores}
        results = runner.map(_render_job, [(by_piece[p.piece], p, out, sample_rate, seed) for p in plans], "render")

        note_fonts = fonts[:spec.note_soundfonts] if spec.note_soundfonts else fonts
        note_plans = N.plan_notes(note_fonts, list(spec.note_programs), spec.notes_per_program,
                                  spec.note_pitch_step, seed)
        note_results = runner.map(_notes_job, [(p, out, sample_rate) for p in note_plans], "notes")
    finally:
        runner.close()

    rows, parts = [], []
    for r in results:
        if "error" in r:
            skipped.append({"kind": "version", "item": r["version"], "reason": r["error"]})
            continue
        rows.append({**r, "split": unit_split[units[r["piece"]]], "cover_group": r["piece"],
                     "tune_group": tunes.get(r["piece"], "")})
        parts += r["parts"]
        skipped += [{"kind": "part", "item": d.split(":")[0], "reason": d} for d in r["dropped"]]
    _mark_tune_queries(rows, seed)
    note_rows = [row for r in note_results for row in r["rows"]]
    program_split = assign({str(p): family(p) for p in spec.note_programs}, seed, PROGRAM_PATTERN, "program")
    for row in note_rows:
        row["split"] = program_split[str(row["program"])]
    skipped += [{"kind": "note", "item": f, "reason": "the preset is silent at this pitch"}
                for r in note_results for f in r["silent"]]

    _write_csv(out / "metadata.csv", VERSION_COLUMNS, rows)
    _write_csv(out / "parts.csv", PART_COLUMNS, parts)
    _write_csv(out / "notes" / "metadata.csv", NOTE_COLUMNS, note_rows)
    _write_csv(out / "skipped.csv", ("kind", "item", "reason"), skipped)

    report = CorpusReport(out, size, seed, sample_rate, [soundfont_name(Path(f)) for f in fonts])
    report.pieces = len({r["piece"] for r in rows})
    report.versions = len(rows)
    report.stems = sum(r[f"has_{s}"] for r in rows for s in SOURCES)
    report.cover_groups = report.pieces
    report.tune_groups = sum(n > 1 for n in _pieces_per_tune(rows).values())
    report.notes = len(note_rows)
    report.mixture_hours = sum(r["duration"] for r in rows) / 3600
    report.note_hours = len(note_rows) * N.NOTE_SECONDS / 3600
    report.skipped = len(skipped)
    report.labels = {
        "composer": dict(sorted(Counter(r["composer"] for r in rows).items())),
        "key": dict(Counter(r["key"] for r in rows).most_common()),
        "mode": dict(sorted(Counter(r["mode"] for r in rows).items())),
        "setting": dict(sorted(Counter(r["setting"] for r in rows).items())),
        "source": {s: sum(r[f"has_{s}"] for r in rows) for s in SOURCES},
        "part family": dict(Counter(p["family"] for p in parts).most_common()),
        "split": {s: sum(r["split"] == s for r in rows) for s in SPLITS},
        "pieces per split": {s: len({r["piece"] for r in rows if r["split"] == s}) for s in SPLITS},
        "tune groups per split": {s: sum(n > 1 and split == s for (t, split), n in _pieces_per_tune(rows).items())
                                  for s in SPLITS},
        "test composer": dict(sorted(Counter(r["composer"] for r in rows if r["split"] == "test").items())),
        "note family": dict(sorted(Counter(r["family"] for r in note_rows).items())),
        "note split": {s: sum(r["split"] == s for r in note_rows) for s in SPLITS},
    }
    _write_readme(out, report, spec)
    report.seconds = time.time() - t0
    report.bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return report


def _write_readme(out: Path, report: CorpusReport, spec: Size) -> None:
    from .readme import readme_text

    text = readme_text(report, spec)
    write_atomically(out / "README.md", lambda handle: handle.write(text), mode="w")
