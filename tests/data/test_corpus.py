"""The built-in corpus: one `small` build per session, checked for the properties the rest of mucon
relies on (stems add up, labels and splits are consistent, builds are reproducible and resumable)."""

import csv
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")

from mucon.data.corpus import SoundfontMissing, build_corpus  # noqa: E402
from mucon.data.corpus import render  # noqa: E402
from mucon.data.corpus.scores import Part, Score  # noqa: E402
from mucon.data.labels import PITCH_CLASS_NAMES  # noqa: E402
from mucon.data.corpus.tunes import tune_groups  # noqa: E402
from mucon.data.corpus.versions import SOURCES  # noqa: E402

try:
    render.find_soundfonts()
except SoundfontMissing:
    pytest.skip("no GM soundfont installed (scripts/install_corpus_deps.sh)", allow_module_level=True)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "small"
    report = build_corpus(out, size="small", seed=0, progress=False)
    return out, report


def test_layout_and_counts(corpus):
    out, report = corpus
    rows = _rows(out / "metadata.csv")
    for col in ("path", "split", "piece", "version", "composer", "key", "tonic", "mode", "tempo",
                "transpose", "soundfont", "cover_group", "tune_group", "tune_retrieval", "sources", "programs",
                "families", "duration", *(f"has_{s}" for s in SOURCES), *(f"stem_{s}" for s in SOURCES)):
        assert col in rows[0], col
    assert len(rows) == report.versions == 12 and report.pieces == 4
    assert all((out / r["path"]).is_file() and r["path"] == f"mixtures/{r['version']}.wav" for r in rows)
    assert {r["split"] for r in rows} == {"train", "valid", "test"}
    notes = _rows(out / "notes" / "metadata.csv")
    assert len(notes) == report.notes > 0
    assert all((out / "notes" / n["path"]).is_file() for n in notes)
    assert {"split", "family", "program", "pitch", "velocity", "soundfont"} <= set(notes[0])
    assert "## Licences" in (out / "README.md").read_text()
    assert (out / "skipped.csv").read_text().splitlines()[0] == "kind,item,reason"
    parts = _rows(out / "parts.csv")
    assert {p["version"] for p in parts} == {r["version"] for r in rows}


def test_stems_sum_to_mixture_and_flags_match_energy(corpus):
    out, _ = corpus
    for r in _rows(out / "metadata.csv"):
        mix = sf.read(out / r["path"], dtype="int16")[0].astype(np.int64)
        total = np.zeros_like(mix)
        for s in SOURCES:
            stem_file = out / "stems" / r["version"] / f"{s}.wav"
            if r[f"has_{s}"] == "1":
                assert r[f"stem_{s}"] == f"stems/{r['version']}/{s}.wav"
                x = sf.read(out / r[f"stem_{s}"], dtype="int16")[0].astype(np.int64)
                assert np.sqrt(np.mean((x / 32768.0) ** 2)) > 1e-3, (r["version"], s)  # above -60 dBFS
                total += x
            else:
                assert r[f"stem_{s}"] == "" and not stem_file.exists()
        assert np.array_equal(total, mix), r["version"]
        assert np.abs(mix).max() < 32767
        assert r["sources"] == ";".join(s for s in SOURCES if r[f"has_{s}"] == "1")


def test_sources_vary_across_versions(corpus):
    rows = _rows(corpus[0] / "metadata.csv")
    for s in SOURCES:
        assert {r[f"has_{s}"] for r in rows} == {"0", "1"}, s


def test_no_piece_tune_or_program_crosses_splits(corpus):
    out, report = corpus
    rows = _rows(out / "metadata.csv")
    for key in ("piece", "cover_group", "tune_group"):
        sides = defaultdict(set)
        for r in rows:
            if r[key]:
                sides[r[key]].add(r["split"])
        assert all(len(v) == 1 for v in sides.values()), key
    by_program = defaultdict(set)
    for n in _rows(out / "notes" / "metadata.csv"):
        by_program[n["program"]].add(n["split"])
    assert all(len(v) == 1 for v in by_program.values())
    # The two chorales of the small build harmonise one tune: a real cover group.
    tunes = defaultdict(set)
    for r in rows:
        if r["tune_group"]:
            tunes[r["tune_group"]].add(r["piece"])
    assert report.tune_groups >= 1 and max(len(p) for p in tunes.values()) >= 2


def test_tune_retrieval_holds_one_version_of_each_chorale(corpus):
    """So that its hits are other harmonisations of the tune, not other versions of the query."""
    rows = _rows(corpus[0] / "metadata.csv")
    chorales = {r["piece"] for r in rows if r["tune_group"]}
    queried = [r for r in rows if r["tune_retrieval"]]
    assert sorted(r["piece"] for r in queried) == sorted(chorales) and len(chorales) == 2
    assert all(r["tune_retrieval"] == r["tune_group"] for r in queried)


def test_corpus_tasks_include_sources_present_and_tune_retrieval(corpus):
    from mucon.evaluation.tasks import corpus_tasks

    tasks = {t.name: t for t in corpus_tasks(corpus[0])}
    sources = tasks["sources-present"]
    assert sources.type == "multilabel" and set(sources.classes) == set(SOURCES)
    rows = {r["path"]: r for r in _rows(corpus[0] / "metadata.csv")}
    hot = sources.targets(sources.rows("all"))
    for path, row_hot in zip(sources.paths, hot):
        flagged = {s for s in SOURCES if rows[path][f"has_{s}"] == "1"}
        assert {c for c, h in zip(sources.classes, row_hot) if h} == flagged
    assert len(tasks["tune-retrieval"].paths) == 2 and tasks["tune-retrieval"].type == "retrieval"


def test_tune_groups_are_dealt_over_the_splits_like_pieces():
    """20 tune groups among 60 lone chorales: whatever the seed, 30% of the groups land in test
    (tune retrieval needs several there), and 30% of the other pieces."""
    from mucon.data.corpus.build import _unit_classes
    from mucon.data.corpus.splits import PIECE_PATTERN, assign

    scores = [_chorale(f"bach-t{g}-{k}", [60, 62]) for g in range(20) for k in range(2)]
    scores += [_chorale(f"bach-lone{i}", [60, 62]) for i in range(60)]
    units = {s.piece: s.piece.rsplit("-", 1)[0] if "-t" in s.piece else s.piece for s in scores}
    for seed in range(5):
        split = assign(_unit_classes(scores, units), seed, PIECE_PATTERN, "piece")
        groups = [split[f"bach-t{g}"] for g in range(20)]
        assert groups.count("test") == 6 and groups.count("valid") == 2, seed
        assert [split[f"bach-lone{i}"] for i in range(60)].count("test") == 18, seed


def test_default_size_balances_classes_by_versions():
    """Scarce classes get more versions per piece, so each class holds about as many versions."""
    from mucon.data.corpus.build import SIZES
    from mucon.data.corpus.scores import COMPOSERS

    spec = SIZES["default"]
    assert set(spec.pieces) == set(COMPOSERS)
    per_class = [n * spec.versions_of(c) for c, n in spec.pieces.items()]
    assert max(per_class) == min(per_class) and sum(per_class) * 0.3 >= 270  # +-0.06 at p = 0.5 in test


def test_leading_rest_bars_are_dropped():
    from mucon.data.corpus.scores import Bar, drop_leading_rests

    bars = [Bar(3.0 * i, 3.0, 3.0, 1.5) for i in range(6)]
    parts = [Part("Cantus", [[10.0, 2.0, 60, 80], [12.0, 3.0, 62, 80]], [12.0]), Part("Tenor", [[9.0, 3.0, 53, 80]])]
    moved, kept = drop_leading_rests(parts, bars)
    assert [b.offset for b in kept] == [0.0, 3.0, 6.0]
    assert moved[0].notes == [[1.0, 2.0, 60, 80], [3.0, 3.0, 62, 80]] and moved[0].fermatas == [3.0]
    assert moved[1].notes == [[0.0, 3.0, 53, 80]]
    assert drop_leading_rests(moved, kept) == (moved, kept)


def test_an_excerpt_without_a_key_is_refused():
    from mucon.data.corpus.scores import ScoreError, estimate_key

    score = _chorale("bach-x", [60, 72, 60, 72])
    with pytest.raises(ScoreError, match="no key"):
        estimate_key(score, 4.0)


def test_key_follows_transposition(corpus):
    by_piece = defaultdict(list)
    for r in _rows(corpus[0] / "metadata.csv"):
        by_piece[r["piece"]].append(r)
    for piece, rows in by_piece.items():
        assert len(rows) == 3 and len({r["transpose"] for r in rows}) == 3
        untransposed = {(PITCH_CLASS_NAMES.index(r["tonic"]) - int(r["transpose"])) % 12 for r in rows}
        assert len(untransposed) == 1 and len({r["mode"] for r in rows}) == 1, piece
        assert all(r["key"] == f"{r['tonic']} {r['mode']}" for r in rows)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_resume_after_interruption_gives_identical_bytes(corpus, tmp_path):
    """Remove what an interruption would leave missing (a version, its row, a note, the tables),
    add a stale temp file, resume in a single process: every file comes back byte-identical, so
    the render does not depend on the order, the process or the resume point."""
    out, _ = corpus
    before = _files(out)
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = _rows(out / "metadata.csv")[4]["version"]
    (copy / "mixtures" / f"{victim}.wav").unlink()
    shutil.rmtree(copy / "stems" / victim)
    (copy / ".cache" / "versions" / f"{victim}.json").unlink()
    (copy / "notes" / _rows(out / "notes" / "metadata.csv")[0]["path"]).unlink()
    (copy / "metadata.csv").unlink()
    (copy / "mixtures" / f"{victim}.wav.tmp").write_bytes(b"half a file")
    build_corpus(copy, size="small", seed=0, progress=False, workers=1)
    (copy / "mixtures" / f"{victim}.wav.tmp").unlink(missing_ok=True)
    assert _files(copy) == before


def test_interrupted_serial_build_resumes_to_the_parallel_result(corpus, tmp_path, monkeypatch):
    """Stop a one-process build at its fifth version, resume it: the result equals, byte for byte,
    the fixture's two-process build."""
    from mucon.data.corpus import build

    real, calls = build.render_version, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "small"
    monkeypatch.setattr(build, "render_version", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(out, size="small", seed=0, progress=False, workers=1)
    assert not (out / "metadata.csv").exists() and len(list((out / "mixtures").glob("*.wav"))) == 4
    monkeypatch.setattr(build, "render_version", real)
    build_corpus(out, size="small", seed=0, progress=False, workers=1)
    assert _files(out) == _files(corpus[0])


def test_other_settings_refuse_to_resume(corpus):
    with pytest.raises(ValueError, match="seed"):
        build_corpus(corpus[0], size="small", seed=1, progress=False)


def test_a_build_of_an_older_format_is_not_resumed(corpus, tmp_path):
    import json

    from mucon.data.corpus.build import FORMAT

    old = tmp_path / "old"
    (old / ".cache").mkdir(parents=True)
    config = json.loads((corpus[0] / ".cache" / "config.json").read_text())
    (old / ".cache" / "config.json").write_text(json.dumps({**config, "format": FORMAT - 1}))
    with pytest.raises(ValueError, match=f"'format': {FORMAT - 1}"):
        build_corpus(old, size="small", seed=0, progress=False)


def test_missing_soundfont_names_packages_and_option(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "SEARCH_DIRS", (str(tmp_path),))
    with pytest.raises(SoundfontMissing) as e:
        build_corpus(tmp_path / "out", size="small", progress=False)
    msg = str(e.value)
    assert all(p in msg for p in render.DEBIAN_PACKAGES) and "--soundfont" in msg and "soundfonts=" in msg
    with pytest.raises(SoundfontMissing, match="nope.sf2"):
        build_corpus(tmp_path / "out", size="small", soundfonts=[tmp_path / "nope.sf2"], progress=False)


def _chorale(piece: str, melody: list[int]) -> Score:
    notes = [[float(i), 1.0, p, 80] for i, p in enumerate(melody)]
    return Score(piece, "bach", piece, "", True, [Part("Soprano", notes, [len(melody) - 1.0])], 0, None, [], None)


def test_tune_groups_match_melodies_in_any_key():
    tune = [67, 67, 69, 71, 72, 71, 69, 67, 66, 67, 69, 71, 69, 67]
    other = [60, 64, 67, 72, 71, 69, 67, 65, 64, 62, 60, 62, 64, 60]
    groups = tune_groups([
        _chorale("bach-a", tune),
        _chorale("bach-b", [p - 5 for p in tune]),  # another key
        _chorale("bach-c", [67, 72, 71, 67, 64, 65, 67, 69, 67, 65, 64, 62, 60, 60]),
        _chorale("bach-d", tune[:7] + [70] + tune[8:]),  # one note changed
        _chorale("bach-e", other),
    ])
    assert groups["bach-a"] == groups["bach-b"] == groups["bach-d"] == "tune-a"
    assert len({groups["bach-a"], groups["bach-c"], groups["bach-e"]}) == 3


def test_grace_notes_get_a_duration_and_ties_merge():
    from music21 import note, stream, tie

    from mucon.data.corpus.scores import MIN_NOTE_QL, _part_notes

    p = stream.Part()
    p.partName = "Soprano"
    grace = note.Note("C5").getGrace()
    a, b = note.Note("D5", quarterLength=1), note.Note("D5", quarterLength=2)
    a.tie, b.tie = tie.Tie("start"), tie.Tie("stop")
    for n in (grace, a, b, note.Note("E5")):
        p.append(n)
    notes = _part_notes(p).notes
    assert [n[2] for n in notes] == [72, 74, 76]
    assert notes[0][1] == MIN_NOTE_QL and notes[1][1] == 3.0


def test_plot_stems(corpus, tmp_path):
    pytest.importorskip("matplotlib")
    from mucon.data.corpus.plot import plot_stems

    version = _rows(corpus[0] / "metadata.csv")[0]["version"]
    png = plot_stems(corpus[0], version, tmp_path / "v.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_unparsable_score_is_skipped_with_its_reason(tmp_path):
    from mucon.data.corpus.build import _parse_job
    from mucon.data.corpus.scores import Candidate

    result = _parse_job(Candidate("bach-nope", "bach", "bach/nope.krn"), tmp_path)
    assert result["error"].startswith("parse failed")
    assert (tmp_path / "scores" / "bach-nope.json").exists()  # a failure is remembered on resume too
