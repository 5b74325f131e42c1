"""Rendering note lists with General MIDI soundfonts through tinysoundfont.

Each part is rendered alone, so its audio is exactly that part's contribution to the mixture.
tinysoundfont keeps voices fading out after a reset (and their filter state), so a synthesiser
reused for a second part would leak the first one's tail into it; :meth:`Synth.render` drains
the voices first, which makes a render depend only on its own notes: byte-identical whatever
the order, process or resume point.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gm import family
from .rng import item_rng
from .scores import Score
from .versions import VersionPlan

DEBIAN_PACKAGES = ("fluid-soundfont-gm", "musescore-general-soundfont-small", "timgm6mb-soundfont")
SEARCH_DIRS = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3", "/usr/share/soundfonts")
KNOWN_FILES = ("FluidR3_GM.sf2", "MuseScore_General_Lite.sf3", "MuseScore_General.sf3", "TimGM6mb.sf2")

DRUM_CHANNEL = 9  # MIDI channel 10
_BLOCK = 4096


class SoundfontMissing(FileNotFoundError):
    """No General MIDI soundfont could be found."""


def find_soundfonts(paths: list[str | os.PathLike] | None = None) -> list[Path]:
    """The soundfonts to render with: ``paths`` when given, else the Debian ones installed.

    Files are resolved and de-duplicated (Debian links several names to one file) and sorted by
    name, so the same machine state always gives the same list and the same renders.
    """
    if paths:
        found = [Path(p).expanduser().resolve() for p in paths]
        missing = [str(p) for p in found if not p.is_file()]
        if missing:
            raise SoundfontMissing(f"soundfont file(s) not found: {', '.join(missing)}")
        for path in found:
            with open(path, "rb") as handle:
                head = handle.read(12)
            if head[:4] != b"RIFF" or head[8:12] != b"sfbk":  # what every .sf2/.sf3 file begins with
                raise ValueError(f"{path}: not a SoundFont (.sf2/.sf3 files begin with a RIFF sfbk header)")
    else:
        found = [(Path(d) / f).resolve() for d in SEARCH_DIRS for f in KNOWN_FILES if (Path(d) / f).is_file()]
    found = sorted(dict.fromkeys(found), key=lambda p: p.name)
    if not found:
        raise SoundfontMissing(
            "no General MIDI soundfont found in " + ", ".join(SEARCH_DIRS) + ". Install the Debian packages: "
            f"apt-get install -y {' '.join(DEBIAN_PACKAGES)} (or run scripts/install_corpus_deps.sh), "
            "or point at a .sf2/.sf3 file with soundfonts=[path] (CLI: --soundfont PATH).")
    return found


def soundfont_name(path: Path) -> str:
    return Path(path).stem


@dataclass(frozen=True)
class Event:
    sample: int
    on: bool
    key: int
    velocity: int = 0


def note_events(notes: list[list[float]], seconds_per_ql: float, sample_rate: int, end_ql: float,
                transpose: int = 0, rng: np.random.Generator | None = None) -> list[Event]:
    """MIDI events of notes (onset_ql, duration_ql, pitch, velocity) up to ``end_ql``.

    Each note is released a little early (10%, at most 30 ms) so repeated pitches re-attack
    instead of merging; with ``rng``, onsets move by up to 8 ms and velocities by up to 6, the
    slack of a player, so repeated renders of one score are not sample-aligned copies.
    """
    events = []
    for on, dur, pitch, vel in notes:
        if on >= end_ql:
            break
        key = int(pitch) + transpose
        if not 0 <= key <= 127:
            continue
        dur = min(dur, end_ql - on)
        t0, t1 = on * seconds_per_ql, (on + dur) * seconds_per_ql
        t1 -= min(0.03, 0.1 * (t1 - t0))
        v = int(vel)
        if rng is not None:
            t0 = max(0.0, t0 + rng.uniform(-0.008, 0.008))
            v += int(rng.integers(-6, 7))
        s0 = int(round(t0 * sample_rate))
        s1 = max(s0 + 1, int(round(t1 * sample_rate)))
        events += [Event(s0, True, key, int(np.clip(v, 1, 127))), Event(s1, False, key)]
    # Offs before ons at the same sample, so a note ending where the next one starts is re-struck.
    events.sort(key=lambda e: (e.sample, e.on, e.key))
    return events


class Synth:
    """One soundfont, loaded once per process, rendering one instrument at a time in mono."""

    def __init__(self, path: Path, sample_rate: int):
        import tinysoundfont._tinysoundfont as tsf

        self._tsf = tsf
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.sf = tsf.SoundFont(str(self.path))
        self.sf.set_max_voices(256)
        self.sf.set_output(tsf.OutputMode.Mono, sample_rate, 0.0)

    def has_preset(self, program: int, drums: bool = False) -> bool:
        return self.sf.get_preset_index(128 if drums else 0, program) >= 0

    def preset_name(self, program: int, drums: bool = False) -> str:
        return str(self.sf.get_preset_name(128 if drums else 0, program))

    def _block(self, out: np.ndarray) -> None:
        if len(out):
            self.sf.render(memoryview(out).cast("B"), False)

    def _drain(self) -> None:
        """Silence every voice left from the last render (see the module note)."""
        self.sf.reset()
        probe = np.empty(_BLOCK, np.float32)
        for _ in range(int(10 * self.sample_rate / _BLOCK)):
            self._block(probe)
            if not probe.any():
                return
        raise RuntimeError(f"{self.path.name}: voices still sounding 10 s after a reset")

    def render(self, events: list[Event], n_samples: int, program: int, drums: bool = False) -> np.ndarray:
        """float32 mono audio of the events played on ``program`` (a drum kit when ``drums``)."""
        self._drain()
        chan = DRUM_CHANNEL if drums else 0
        self.sf.channel_set_preset_number(chan, program, drums)
        out = np.zeros(n_samples, np.float32)
        pos = 0
        for e in events:
            if e.sample >= n_samples:
                break
            self._block(out[pos:e.sample])
            pos = max(pos, e.sample)
            if e.on:
                self.sf.channel_note_on(chan, e.key, e.velocity / 127.0)
            else:
                self.sf.channel_note_off(chan, e.key)
        self._block(out[pos:])
        return out


_SYNTHS: dict[tuple[str, int], Synth] = {}


def synth(path: Path, sample_rate: int) -> Synth:
    """The process's synthesiser for a soundfont (loading MuseScore's .sf3 takes seconds)."""
    key = (str(path), sample_rate)
    if key not in _SYNTHS:
        _SYNTHS[key] = Synth(Path(path), sample_rate)
    return _SYNTHS[key]


TAIL_SECONDS = 1.0
"""Audio kept after the excerpt's last note-off, for releases and reverb."""
FADE_SECONDS = 0.25
PART_DBFS = -20.0
"""Reference loudness of a part (RMS where it sounds) before its plan's gain: presets differ by up
to 40 dB in tinysoundfont (MuseScore's pianos are whisper-quiet, FluidR3's choir loud), and a mix
should be balanced by the arrangement, not by which preset happened to be hot."""
MIX_DBFS = -18.0
PEAK = 0.89
"""Peak ceiling (-1 dBFS) for the mixture and every stem, so the int16 sum never clips."""
SILENT_RMS = 1e-6
"""tinysoundfont outputs exact zeros when nothing sounds; anything above -120 dBFS is a sound."""
FALLBACK = {"vocals": (52, 53), "bass": (32, 42, 0), "other": (0, 48, 19), "drums": (0,)}
"""Programs tried, in order, when a preset renders silence (e.g. FluidR3's contrabass has no
samples above its range)."""


def _active_rms(x: np.ndarray, frame: int = 2048) -> float:
    """RMS over the frames within 40 dB of the loudest: the level of the part where it plays, so a
    part that rests half the excerpt is not turned up to make up for its rests."""
    n = max(len(x) // frame, 1) * frame
    frames = np.mean(np.square(np.resize(x, n).reshape(-1, frame), dtype=np.float64), axis=1)
    if frames.max() < SILENT_RMS ** 2:
        return 0.0
    return float(np.sqrt(frames[frames > frames.max() * 1e-4].mean()))


@dataclass
class RenderedVersion:
    stems: dict[str, np.ndarray]  # source -> int16; only the sources present
    mixture: np.ndarray  # int16, exactly the sum of the stems
    parts: list[dict]  # what each part became (program, preset, gain, ...), for parts.csv
    dropped: list[str]  # parts that stayed silent with every program tried


def render_version(score: Score, plan: VersionPlan, sample_rate: int, seed: int) -> RenderedVersion:
    """Render every part of a version on its own and add them into source stems and a mixture."""
    syn = synth(Path(plan.soundfont), sample_rate)
    n = int(round((plan.end_ql * plan.seconds_per_ql + TAIL_SECONDS) * sample_rate))
    sums: dict[str, np.ndarray] = {}
    parts, dropped = [], []
    for k, pp in enumerate(plan.parts):
        drums = pp.part < 0
        notes = plan.drums if drums else score.parts[pp.part].notes
        rng = item_rng(seed, "perform", plan.version_id, str(k))
        events = note_events(notes, plan.seconds_per_ql, sample_rate, plan.end_ql,
                             0 if drums else plan.transpose, rng)
        if not events:
            continue  # the part rests through the whole excerpt
        tried = (pp.kit,) if drums else (pp.program,)
        tried += tuple(p for p in FALLBACK[pp.source] if p not in tried)
        for program in tried:
            if not syn.has_preset(program, drums):
                continue
            audio = syn.render(events, n, program, drums)
            level = _active_rms(audio)
            if level > SILENT_RMS:
                break
        else:
            dropped.append(f"{plan.version_id}: part {k} ({pp.name}) silent on programs {list(tried)}")
            continue
        gain = 10 ** ((PART_DBFS + pp.gain_db) / 20) / level
        sums.setdefault(pp.source, np.zeros(n, np.float64))
        sums[pp.source] += gain * audio
        parts.append(dict(part=k, name=pp.name, role=pp.role, source=pp.source,
                          program=pp.program if drums else program, kit=program if drums else "",
                          family=family(pp.program if drums else program),
                          preset=syn.preset_name(program, drums), gain_db=pp.gain_db,
                          notes=sum(e.on for e in events)))
    if not sums:
        raise RuntimeError(f"{plan.version_id}: every part rendered silent")
    fade = np.ones(n)
    k = int(FADE_SECONDS * sample_rate)
    fade[n - k:] = np.linspace(1.0, 0.0, k)
    for src in sums:
        sums[src] *= fade
    mix = sum(sums.values())
    peak = max(np.abs(mix).max(), *(np.abs(s).max() for s in sums.values()))
    g = min(10 ** (MIX_DBFS / 20) / np.sqrt(np.mean(mix ** 2)), PEAK / peak) * 32767
    stems = {src: np.rint(s * g).astype(np.int16) for src, s in sums.items()}
    total = np.sum([s.astype(np.int32) for s in stems.values()], axis=0)
    assert np.abs(total).max() <= 32767, "headroom rule broken"
    return RenderedVersion(stems, total.astype(np.int16), parts, dropped)
