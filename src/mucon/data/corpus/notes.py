"""Single notes, NSynth-style: one GM program at one pitch and velocity, held 1.5 s in a 2 s file.

Unlike NSynth the instrument label is the GM family (16 classes, every program belongs to one),
and several soundfonts play each program, so a family is learnt across different sample sets.
Each preset gets one gain (see :func:`render_notes`), so velocity stays audible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gm import family
from .render import Event, soundfont_name, synth
from .rng import item_rng

NOTE_SECONDS = 2.0
HOLD_SECONDS = 1.5
"""Half of NSynth's 4 s (3 s held): attack, sustain and release are all heard, and the note set,
embedded once per model by every evaluation, costs half the time."""
VELOCITIES = (25, 50, 75, 100, 127)
REFERENCE_DBFS = -20.0
SILENT_RATIO = 1e-3
"""A note 60 dB below its preset's reference note is silence (a pitch outside the samples)."""

# Playable MIDI ranges; a note outside a preset's samples renders silent and is skipped.
FAMILY_RANGE = {
    "piano": (21, 108), "chromatic_percussion": (48, 96), "organ": (36, 96), "guitar": (40, 84),
    "bass": (28, 60), "strings": (36, 96), "ensemble": (36, 84), "brass": (40, 84), "reed": (40, 84),
    "pipe": (55, 96), "synth_lead": (36, 96), "synth_pad": (36, 84), "synth_effects": (36, 84),
    "ethnic": (48, 84), "percussive": (36, 84), "sound_effects": (48, 72),
}
PROGRAM_RANGE = {40: (55, 100), 41: (48, 88), 42: (36, 76), 43: (28, 60), 72: (74, 108), 58: (28, 60), 70: (34, 72)}
"""Instruments whose range is far from their family's: violin, viola, cello, contrabass, piccolo,
tuba, bassoon."""


@dataclass(frozen=True)
class NotePlan:
    soundfont: str  # path
    program: int
    items: tuple[tuple[int, int], ...]  # (pitch, velocity)


def pitch_range(program: int) -> tuple[int, int]:
    return PROGRAM_RANGE.get(program, FAMILY_RANGE[family(program)])


def plan_notes(soundfonts: list[str], programs: list[int], per_program: int | None, pitch_step: int,
               seed: int) -> list[NotePlan]:
    """What to render: per (soundfont, program), ``per_program`` random (pitch, velocity) pairs,
    or with ``per_program=None`` the grid of every ``pitch_step``-th pitch at every velocity."""
    plans = []
    for sf in soundfonts:
        for program in programs:
            lo, hi = pitch_range(program)
            if per_program is None:
                items = tuple((p, v) for p in range(lo, hi + 1, pitch_step) for v in VELOCITIES)
            else:
                rng = item_rng(seed, "notes", soundfont_name(Path(sf)), str(program))
                grid = [(p, v) for p in range(lo, hi + 1) for v in VELOCITIES]
                pick = sorted(rng.choice(len(grid), size=min(per_program, len(grid)), replace=False))
                items = tuple(grid[i] for i in pick)
            plans.append(NotePlan(sf, program, items))
    return plans


def note_file(plan: NotePlan, pitch: int, velocity: int) -> str:
    """Path relative to the notes folder, NSynth-like: family_soundfont_program-pitch-velocity."""
    return (f"audio/{family(plan.program)}_{soundfont_name(Path(plan.soundfont))}_"
            f"{plan.program:03d}-{pitch:03d}-{velocity:03d}.wav")


def render_notes(plan: NotePlan, sample_rate: int) -> list[np.ndarray | None]:
    """int16 audio of each (pitch, velocity) of the plan, None where the preset has no sound there.

    One gain per (soundfont, program), set by a reference note (mid-range, velocity 100) at
    REFERENCE_DBFS: presets differ by up to 40 dB in tinysoundfont (MuseScore's pianos are very
    quiet), and one gain per preset evens that out while keeping the loudness differences of
    velocity and register within an instrument. Lowered if needed so no note clips.
    """
    syn = synth(Path(plan.soundfont), sample_rate)
    n = int(NOTE_SECONDS * sample_rate)
    off = int(HOLD_SECONDS * sample_rate)

    def play(pitch: int, velocity: int) -> np.ndarray:
        return syn.render([Event(0, True, pitch, velocity), Event(off, False, pitch)], n, plan.program)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))

    lo, hi = pitch_range(plan.program)
    ref = rms(play((lo + hi) // 2, 100))
    audio = [play(p, v) for p, v in plan.items]
    if ref < 1e-9:  # silent mid-range: let the loudest requested note set the level
        ref = max(map(rms, audio))
    sounding = [x if rms(x) > max(ref * SILENT_RATIO, 1e-9) else None for x in audio]
    peak = max((float(np.abs(x).max()) for x in sounding if x is not None), default=1.0)
    gain = min(10 ** (REFERENCE_DBFS / 20) / max(ref, 1e-12), 0.99 / peak) * 32767
    return [None if x is None else np.rint(x * gain).astype(np.int16) for x in sounding]
