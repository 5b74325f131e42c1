"""Version plans: how each rendition of a piece is orchestrated, pitched, paced and voiced.

A piece's versions are its synthetic covers: same notes, different soundfont, instruments, tempo
and key. Parts map onto the four separation sources the way a producer would hear them: the top
voice is sometimes sung (GM choir/voice programs: "vocals"), the lowest line goes to a bass or low
string ("bass"), inner voices are "other", and some versions add a GM drum part ("drums"). Settings
leave sources out on purpose (a choir has no bass instrument, a keyboard reduction no voice), so
every source is present in some versions and absent in others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .gm import DRUM_PROGRAM
from .rng import item_rng
from .scores import Score, estimate_key, excerpt_end

SOURCES = ("vocals", "drums", "bass", "other")
TEMPO_SPREAD = 0.15
"""Versions play at the piece's base tempo times 1 +- this (the first version at the base)."""
TRANSPOSITIONS = tuple(t for t in range(-5, 7) if t)
"""Semitones a version may move by: within a fourth down / tritone up keeps voices in range."""
BASE_BPM = (66.0, 100.0)
"""Beats per minute drawn for a score without a metronome mark (the beat is the time signature's)."""

SUNG = (52, 53)  # Choir Aahs, Voice Oohs


@dataclass(frozen=True)
class Setting:
    """An ensemble type: which programs each role may take and how likely voice and drums are."""
    lead: tuple[int, ...]  # top voice when it is not sung
    inner: tuple[int, ...]
    bass: tuple[int, ...]  # bass line, counted as the "bass" source
    p_sung_top: float
    p_drums: float
    drum_styles: tuple[str, ...]
    kits: tuple[int, ...]
    tutti: str | None = None  # one program (drawn from `lead`) plays every line, as this source


SETTINGS = {
    # Pop/rock band: piano, guitars, organs, pads; bass guitar; drums most of the time.
    "band": Setting(lead=(56, 65, 66, 73, 80, 81, 26, 29, 11, 22),
                    inner=(0, 4, 5, 16, 17, 24, 25, 27, 48, 50, 61, 62, 88, 89, 90),
                    bass=(32, 33, 34, 35, 36, 38, 39), p_sung_top=0.6, p_drums=0.8,
                    drum_styles=("rock", "rock", "light"), kits=(0, 8, 16, 24)),
    # Classical chamber ensemble: strings and winds; cello or double bass on the bass line.
    "chamber": Setting(lead=(40, 73, 68, 71, 74, 56, 60),
                       inner=(40, 41, 42, 46, 48, 49, 57, 60, 69, 70, 71, 6),
                       bass=(42, 43), p_sung_top=0.3, p_drums=0.2,
                       drum_styles=("light", "tambourine"), kits=(0, 32, 40, 48)),
    # A cappella choir: every voice sung, so the only source is vocals (drums now and then).
    "choir": Setting(lead=SUNG, inner=(), bass=(), p_sung_top=1.0, p_drums=0.2,
                     drum_styles=("tambourine", "light"), kits=(0, 32, 40), tutti="vocals"),
    # Keyboard (or guitar, harp) reduction: one instrument plays every line, the bass line too.
    "keyboard": Setting(lead=(0, 1, 2, 4, 6, 16, 19, 20, 21, 24, 46), inner=(), bass=(),
                        p_sung_top=0.0, p_drums=0.3, drum_styles=("light", "tambourine"),
                        kits=(0, 32, 40), tutti="other"),
}


@dataclass
class PartPlan:
    part: int  # index into Score.parts; -1 for the added drum part
    name: str
    role: str  # top, inner, bass, drums
    source: str
    program: int  # GM program 0-127, or DRUM_PROGRAM
    gain_db: float  # level relative to the version's reference loudness
    kit: int = 0  # GM drum kit (bank 128 preset), drums only


@dataclass
class VersionPlan:
    version_id: str
    piece: str
    index: int
    setting: str
    soundfont: str  # path
    transpose: int
    bpm: float  # beats per minute; the beat is the time signature's
    seconds_per_ql: float
    end_ql: float  # excerpt length in quarter lengths
    tonic: int  # pitch class after transposition
    mode: str
    parts: list[PartPlan]
    drums: list[list[float]] = field(default_factory=list)  # drum notes, as Part.notes


def _pick(rng: np.random.Generator, options: tuple[int, ...], taken: set[int]) -> int:
    fresh = [p for p in options if p not in taken] or list(options)
    choice = int(fresh[int(rng.integers(len(fresh)))])
    taken.add(choice)
    return choice


def _orchestrate(score: Score, setting: Setting, rng: np.random.Generator) -> list[PartPlan]:
    sung_top = rng.random() < setting.p_sung_top
    tutti = int(rng.choice(setting.lead)) if setting.tutti else None
    taken: set[int] = set()
    plans = []
    for i, part in enumerate(score.parts):
        role = "top" if i == score.top else "bass" if i == score.bass else "inner"
        if tutti is not None:
            program, source = tutti, setting.tutti
        elif role == "top" and sung_top:
            program, source = _pick(rng, SUNG, taken), "vocals"
        elif role == "top":
            program, source = _pick(rng, setting.lead, taken), "other"
        elif role == "bass":
            program, source = _pick(rng, setting.bass, taken), "bass"
        else:
            program, source = _pick(rng, setting.inner, taken), "other"
        gain = {"top": 0.0, "inner": -3.0, "bass": -1.5}[role] + float(rng.uniform(-2, 2))
        plans.append(PartPlan(i, part.name, role, source, program, round(gain, 2)))
    return plans


# GM percussion keys.
KICK, SIDE_STICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH, RIDE, TAMBOURINE, SHAKER = 36, 37, 38, 42, 46, 49, 51, 54, 70


def drum_part(score: Score, end_ql: float, style: str, rng: np.random.Generator) -> list[list[float]]:
    """A drum part that follows the score's bars: kick on the downbeat (and mid-bar in four),
    backbeats, a pulse on each beat's subdivision (three in compound metre). Pickups and bars cut
    by the excerpt end stay empty, so the drums enter and stop on bar lines like a drummer would."""
    backbeat = {"rock": SNARE, "light": SIDE_STICK, "tambourine": TAMBOURINE}[style]
    pulse = {"rock": CLOSED_HAT, "light": RIDE, "tambourine": SHAKER}[style]
    notes: list[list[float]] = []
    first = True
    for bar in score.bars:
        if bar.offset + bar.full > end_ql + 1e-6:
            break
        if bar.length < bar.full - 1e-6:
            continue
        n_beats = max(1, int(round(bar.full / bar.beat)))
        sub = 3 if abs(bar.beat / 1.5 - round(bar.beat / 1.5)) < 1e-6 and bar.beat >= 0.75 else 2
        step = bar.beat / sub
        for b in range(n_beats):
            t = bar.offset + b * bar.beat
            if b == 0 or (n_beats >= 4 and b == n_beats // 2):
                notes.append([t, step, KICK, 100 if style == "rock" else 80])
            if (b % 2 == 1) if n_beats != 3 else b > 0:
                notes.append([t, step, backbeat, 96 if style == "rock" else 75])
            for s in range(sub):
                vel = 78 if s == 0 else 60
                last = b == n_beats - 1 and s == sub - 1
                key = OPEN_HAT if style == "rock" and last and rng.random() < 0.3 else pulse
                notes.append([t + s * step, step / 2, key, vel])
        if first and style == "rock":
            notes.append([bar.offset, bar.beat, CRASH, 100])
        first = False
    notes.sort(key=lambda n: (n[0], n[2]))
    return notes


def plan_versions(score: Score, n_versions: int, soundfonts: list[str], seed: int,
                  max_seconds: float) -> list[VersionPlan]:
    """The versions of one piece. Everything random comes from the piece's own generator.

    The excerpt is fixed per piece, in bars, so that the slowest allowed version lasts at most
    ``max_seconds``: all versions play the same music (a cover), the faster ones in less time, and
    the key label (estimated on that excerpt) is the same up to each version's transposition.
    """
    rng = item_rng(seed, "plan", score.piece)
    base = score.marked_bpm or float(rng.uniform(*BASE_BPM))
    end_ql = excerpt_end(score, max_seconds * base * (1 - TEMPO_SPREAD) * score.beat / 60)
    tonic, mode = estimate_key(score, end_ql)
    names = list(SETTINGS)
    order = [names[i] for i in rng.permutation(len(names))]
    shifts = [0] + [int(t) for t in rng.choice(TRANSPOSITIONS, size=n_versions - 1, replace=False)]
    sf_offset = int(rng.integers(len(soundfonts)))
    plans = []
    for i in range(n_versions):
        setting_name = order[i % len(order)]
        setting = SETTINGS[setting_name]
        bpm = round(base * (1.0 if i == 0 else float(rng.uniform(1 - TEMPO_SPREAD, 1 + TEMPO_SPREAD))), 1)
        parts = _orchestrate(score, setting, rng)
        drums: list[list[float]] = []
        if rng.random() < setting.p_drums:
            style = str(rng.choice(setting.drum_styles))
            drums = drum_part(score, end_ql, style, rng)
            if drums:
                parts.append(PartPlan(-1, "drums", "drums", "drums", DRUM_PROGRAM,
                                      round(-3.0 + float(rng.uniform(-2, 2)), 2), int(rng.choice(setting.kits))))
        plans.append(VersionPlan(
            version_id=f"{score.piece}-v{i}", piece=score.piece, index=i, setting=setting_name,
            soundfont=str(soundfonts[(sf_offset + i) % len(soundfonts)]), transpose=shifts[i], bpm=bpm,
            seconds_per_ql=60.0 / (bpm * score.beat), end_ql=end_ql, tonic=(tonic + shifts[i]) % 12,
            mode=mode, parts=parts, drums=drums))
    return plans
