"""How labelled and unlabelled items mix in a batch (SemiSupCon's b_s and p_s), decided in one place.

A ``DataRequest`` states the rules (``labelled_share``, ``labelled_keep``); ``BatchComposition`` applies
them once to a store's labels: which items keep their labels, how many clips of each batch come from the
labelled pool, and the line that tells the run's log. The data module draws its batches from it and a
method checks its own settings against it, so no second place re-derives the share.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mucon.data.request import DataRequest
from mucon.data.sampler import share_of, split_pools


def labelled_clips_per_batch(request: DataRequest, batch_size: int) -> int:
    """floor(b_s x B): the release's ``int(B * b_s)`` labelled clips of a batch of B (0 without a share)."""
    return share_of(request.labelled_share or 0.0, batch_size)


@dataclasses.dataclass(frozen=True, eq=False)  # its pools are arrays
class BatchComposition:
    """One process's batch: ``counts[k]`` clips from ``pools[k]`` (item indices, each pool once; the data
    module repeats them ``crops_per_item`` times); ``labelled_pool`` is the pool whose clips carry labels
    (None: every clip is self-supervised).

    ``description`` is the run's log line; ``labels_unused`` says that the request asked for a labelled
    share and got none (the log line is then a warning); ``most_labels_per_item`` is the largest number of
    labels an item of the store carries (0 without a label column).
    """

    pools: tuple[np.ndarray, ...]
    counts: tuple[int, ...]
    labelled_pool: int | None
    description: str
    labels_unused: bool
    most_labels_per_item: int

    @classmethod
    def of(cls, request: DataRequest, batch_size: int, labelled: np.ndarray, label_rows: np.ndarray | None,
           seed: int, store: str) -> BatchComposition:
        """The composition of batches of ``batch_size`` clips for ``request`` from a store (named ``store`` in
        errors) whose items are ``labelled`` (bool per item) with multi-hot ``label_rows`` (None: no label
        column); the labelled subset kept (p_s) depends only on ``seed`` and the items."""
        most = int(label_rows.sum(1).max()) if label_rows is not None and len(label_rows) else 0
        kept, unlabelled = split_pools(labelled, request.labelled_keep, seed)
        if request.labelled_share == 1.0 and not len(kept):
            raise ValueError(f"{store}: labelled_share 1 trains on labels only, but no item is labelled")
        n_labelled = labelled_clips_per_batch(request, batch_size) if len(kept) else 0
        if n_labelled == 0:  # pure self-supervision: every item, labels unused
            reasons = _why_unsupervised(request, batch_size, labelled, label_rows is not None, len(kept))
            return cls((np.arange(len(labelled)),), (batch_size,), None, f"purely self-supervised: {reasons}",
                       bool(request.labelled_share), most)
        description = (f"semi-supervised: {n_labelled} of {batch_size} clips per batch labelled, drawn from "
                       f"{len(kept)} labelled items (of {int(labelled.sum())})")
        if n_labelled == batch_size:
            return cls((kept,), (batch_size,), 0, description, False, most)
        if not len(unlabelled):  # every item keeps its labels (p_s = 1 on a fully labelled store):
            unlabelled = np.arange(len(labelled))  # the unlabelled share draws every item, labels unused
        return cls((kept, unlabelled), (n_labelled, batch_size - n_labelled), 0, description, False, most)


def _why_unsupervised(request: DataRequest, batch_size: int, labelled: np.ndarray, has_label_column: bool,
                      kept: int) -> str:
    """Why no clip of a batch carries labels: every reason that applies."""
    reasons = []
    if not has_label_column:
        reasons.append("no data.label_column")
    elif not labelled.any():
        reasons.append("no labelled item in the store")
    if request.labelled_share == 0:
        reasons.append("labelled_share (b_s) is 0")
    if request.labelled_keep == 0:
        reasons.append("labelled_keep (p_s) is 0")
    elif labelled.any() and not kept:
        reasons.append(f"labelled_keep (p_s) {request.labelled_keep} keeps none of the "
                       f"{int(labelled.sum())} labelled items")
    elif request.labelled_share and labelled.any():
        reasons.append(f"labelled_share (b_s) {request.labelled_share} of a batch of "
                       f"{batch_size} rounds down to 0 clips")
    return "; ".join(reasons) or "no labelled share requested"
