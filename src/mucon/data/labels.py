"""Label values that a table or the corpus writes and an evaluation task reads: defined once, so the
two cannot drift apart."""

SPLITS = ("train", "valid", "test")
"""The parts of every published, corpus and task split, in that order."""

PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
"""One spelling per pitch class, so a key label is a class name, not an enharmonic choice."""
