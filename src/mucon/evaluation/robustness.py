"""SemiSupCon's robustness protocol: a probe trained on CLEAN train embeddings is scored on test
audio corrupted (i) by the pretraining chain at severities 0, .5, 1, 1.5, 2, (ii) by corruptions
SemiSupCon's pretraining never applied, one at a time, and (iii) by tiers stacking them. Severity 0
is the clean test score, shared by every curve. What is unseen for SemiSupCon may be seen by
another model (CLMR and PEMR pretrain with reverb): ``exposure`` says, for each model's own
pretraining chain (``pretraining_augmentations``), which conditions it saw. The corruption's
random parameters are drawn per file from (seed, corruption, severity, path), so every model hears
the same corrupted test set (at its own sample rate), whatever the order or batching.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from mucon.evaluation.corruptions import CORRUPTIONS, _leaf_augmentations

SEEN, PARTLY_SEEN, UNSEEN, UNKNOWN = "seen", "partly seen", "unseen", "unknown"


def pretraining_augmentations(config: Mapping) -> frozenset[str]:
    """The effects a run's pretraining chain applies (``augment`` class names), from its checkpoint's
    config: the method is built and its ``augment`` chain opened, so this follows the method's own
    code (COLA and MSCOL have no chain: an empty set)."""
    from mucon.config import RunConfig, from_dict
    from mucon.methods import method_class

    run_config = from_dict(RunConfig, config)
    with torch.random.fork_rng(devices=[]):
        method = method_class(run_config.method_name)(run_config)
    chain = getattr(method, "augment", None)
    return _leaf_augmentations(chain) if chain is not None else frozenset()


def exposure(corruption: str, augmentations: frozenset[str]) -> str:
    """Whether a model pretrained with ``augmentations`` saw ``corruption``: every effect that makes
    it (a tier: each of its members), some of them, or none."""
    members = CORRUPTIONS[corruption].members or (corruption,)
    each = [CORRUPTIONS[member].produced_by for member in members]
    if all(produced and produced <= augmentations for produced in each):
        return SEEN
    return PARTLY_SEEN if any(produced & augmentations for produced in each) else UNSEEN


# Named selections of (corruptions, severities); None: all of them. ``quick``, evaluate's default, is
# SemiSupCon's pretraining chain and two everyday corruptions (a room, which CLMR and PEMR pretrain with,
# and a low-bitrate codec no preset saw), at a clear and a harsh severity: 6 conditions, where ``full``
# (the whole protocol) is 43 and costs a pass of every model over the test files per condition.
CORRUPTION_PRESETS = {
    "quick": (("training-chain", "reverb", "mp3"), (1.0, 2.0)),
    "full": (None, None),
}


@dataclasses.dataclass(frozen=True)
class Condition:
    """One corruption at one severity: the unit that test audio is embedded under."""

    corruption: str
    severity: float

    @property
    def key(self) -> str:
        return f"{self.corruption}@{self.severity:g}"

    def apply(self, x: Tensor, sample_rate: int, generator: torch.Generator) -> Tensor:
        return CORRUPTIONS[self.corruption].apply(x, self.severity, sample_rate, generator)


def checked_corruptions(
    corruptions: str | Sequence[str] | None, severities: Sequence[float] | None
) -> tuple[list[str], Sequence[float] | None]:
    """The corruptions' names and severities, a preset of ``CORRUPTION_PRESETS`` expanded (its severities
    unless ``severities`` are given; None: every corruption), or a ValueError for an unknown name or for a
    severity that none of them is tested at (it would drop them without a word)."""
    if isinstance(corruptions, str):
        if corruptions not in CORRUPTION_PRESETS:
            raise ValueError(f"unknown corruption preset {corruptions!r}; choose from {sorted(CORRUPTION_PRESETS)}")
        corruptions, preset_severities = CORRUPTION_PRESETS[corruptions]
        severities = preset_severities if severities is None else severities
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    unknown = sorted(set(names) - set(CORRUPTIONS))
    if unknown:
        raise ValueError(f"unknown corruption(s) {unknown}; choose from {sorted(CORRUPTIONS)}")
    tested = sorted({level for name in names for level in CORRUPTIONS[name].severities})
    untested = [severity for severity in severities or () if severity not in tested]
    if untested:
        raise ValueError(f"severit{'y' if len(untested) == 1 else 'ies'} {', '.join(f'{s:g}' for s in untested)}: "
                         f"the corruptions are tested at {', '.join(f'{s:g}' for s in tested)} only (severity 0, "
                         "the clean test set, is always scored)")
    return names, severities


def robustness_conditions(
    sample_rate: int, corruptions: str | Sequence[str] | None = None, severities: Sequence[float] | None = None
) -> tuple[list[Condition], dict[str, str]]:
    """The conditions to test and the skipped corruptions with the reason (MP3 where libsndfile
    cannot encode it at this rate).

    ``corruptions``: names, a preset of ``CORRUPTION_PRESETS`` (its severities unless ``severities``
    are given), or None for every corruption at each of its severities; ``severities`` keeps only
    those levels (a corruption with a single level, like reverse, keeps it).
    """
    names, severities = checked_corruptions(corruptions, severities)
    conditions, skipped = [], {}
    for name in names:
        corruption = CORRUPTIONS[name]
        if not corruption.available(sample_rate):
            skipped[name] = f"cannot be encoded at {sample_rate} Hz by this libsndfile"
            continue
        levels = corruption.severities
        if severities is not None and len(levels) > 1:
            levels = tuple(level for level in levels if level in severities)
        conditions.extend(Condition(name, level) for level in levels)
    return conditions, skipped


def robustness_curves(
    clean_score: float, conditions: Sequence[Condition], score: Callable[[Condition], float]
) -> dict[str, dict[str, float]]:
    """``{corruption: {severity: score}}``, each curve starting from the clean score at severity 0."""
    curves: dict[str, dict[str, float]] = {}
    for condition in conditions:
        curve = curves.setdefault(condition.corruption, {"0": clean_score})
        curve[f"{condition.severity:g}"] = score(condition)
    return curves
