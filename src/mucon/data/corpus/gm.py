"""General MIDI facts the corpus labels with: the 16 instrument families and the drum kit.

Labels use GM families (not NSynth's 11) because every program a soundfont holds maps onto exactly
one of them, so a label never has to be guessed from an instrument's name.
"""

FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive",
    "sound_effects",
)
DRUMS_FAMILY = "drums"
DRUM_PROGRAM = 128
"""Program number written for the GM percussion kit (channel 10), one past the melodic programs."""


def family(program: int) -> str:
    """GM family of a program (0-127), or ``drums`` for the percussion kit."""
    if program == DRUM_PROGRAM:
        return DRUMS_FAMILY
    if not 0 <= program < 128:
        raise ValueError(f"GM program out of range: {program}")
    return FAMILIES[program // 8]

