"""What a method asks of its data: one small typed request that a single data module serves.

Methods differ in how they cut clips (one crop, N adjacent chunks, crops inside a segment), in
whether they need separated sources and in how labelled and unlabelled items mix in a batch. They
say so here, and ``mucon.data`` serves every request from a store: a new method adds no data code.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

ADJACENT = "adjacent"
INDEPENDENT = "independent"
ANYWHERE = "anywhere"
LAYOUTS = (ADJACENT, INDEPENDENT, ANYWHERE)


@dataclasses.dataclass(frozen=True)
class DataRequest:
    """Each batch row is one clip of a store item, cut as follows.

    - ``views`` crops of ``crop_samples`` per clip. ``layout="adjacent"``: N adjacent,
      non-overlapping chunks of one random excerpt (SemiSupCon; CLMR is the case N = 1).
      ``layout="independent"``: independent random crops inside one random segment of
      ``segment_samples`` (COLA: two crops of a 4 s segment). ``layout="anywhere"``: each view its own
      crop, its start drawn uniformly over the whole item, independently of the other views (CLMR and
      PEMR, whose releases put the random crop first in the per-view chain).
    - ``sources``: stem types (vocals, drums, bass, other) to return, each one crop of
      ``crop_samples`` at its own random start inside the same segment, with whether the source is
      present there (mean |x| of the stem over the segment above ``presence_threshold``).
      ``source_per_batch``: each batch draws ONE of ``sources`` (the same on every process) and
      returns only that stem (MSCOL); ``present_only_probability`` is the chance, drawn per batch,
      that a batch holds only clips whose segment has that source present.
    - ``item_level``: return the RMS of each clip's whole item (``level``) and, with ``sources``, of each
      returned stem over its whole length (``source_level``), measured once when the store was prepared:
      COLA and MSCOL scale crops by their item's level, not their own.
    - ``labels``: return multi-hot label rows and whether each clip counts as labelled.
      ``labelled_share`` (b_s): exactly floor(b_s x B) labelled clips per batch of B, the rest from
      the unlabelled pool; ``labelled_keep`` (p_s): the seeded fraction (rounded down) of labelled items that keep
      their labels (the rest join the unlabelled pool; when no item is left for it, as with p_s = 1
      on a fully labelled store, the unlabelled share draws every item without its labels).
      ``labelled_share=None`` draws every item from one pool, as it comes. ``mucon.data.composition``
      applies these rules, once per run.
    """

    crop_samples: int
    views: int = 1
    layout: Literal["adjacent", "independent", "anywhere"] = ADJACENT
    segment_samples: int | None = None
    sources: tuple[str, ...] = ()
    source_per_batch: bool = False
    present_only_probability: float = 0.0
    presence_threshold: float = 0.01
    item_level: bool = False
    labels: bool = False
    labelled_share: float | None = None
    labelled_keep: float = 1.0

    def __post_init__(self):
        if self.crop_samples < 1 or self.views < 1:
            raise ValueError(f"crop_samples and views must be positive, got {self.crop_samples} and {self.views}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(map(repr, LAYOUTS))}, got {self.layout!r}")
        if self.layout == ANYWHERE and (self.segment_samples is not None or self.sources):
            raise ValueError("layout 'anywhere' crops the whole item: it takes no segment_samples and no sources")
        if self.segment_samples is not None and self.segment_samples < self.crop_samples:
            raise ValueError(f"segment_samples ({self.segment_samples}) is shorter than crop_samples ({self.crop_samples})")
        if self.source_per_batch and not self.sources:
            raise ValueError("source_per_batch needs at least one source to draw from")
        if self.present_only_probability and not self.source_per_batch:
            raise ValueError("present_only_probability applies to the batch's source: set source_per_batch")
        for name, value in (("present_only_probability", self.present_only_probability),
                            ("labelled_keep", self.labelled_keep),
                            ("labelled_share", self.labelled_share if self.labelled_share is not None else 0.0)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {value}")
        if self.labelled_share is not None and not self.labels:
            raise ValueError("labelled_share needs labels=True")

    @property
    def excerpt_samples(self) -> int:
        """Length of the stretch of an item one clip is cut from (its segment; for ``anywhere``, the
        shortest such stretch: one crop)."""
        if self.segment_samples is not None:
            return self.segment_samples
        return self.crop_samples * (self.views if self.layout == ADJACENT else 1)
