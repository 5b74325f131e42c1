"""Which clips go into each batch: labelled and unlabelled pools, per-batch choices, any number of processes.

Everything a batch holds is a pure function of (seed, batch position): the items (from per-pool
permutations, reshuffled at every pass over a pool), each clip's crop randomness and the batch-level
draws (MSCOL's source and present-only coin). So a resumed run continues the exact sequence from its
step, mid-epoch included, the number of data-loader workers never changes a batch, and under data
parallelism each process takes its own slice of the global batch: the processes' items are disjoint
and together are what one process with the global batch would draw.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import Sampler

from mucon.data.request import DataRequest

# Stream tags for keyed generators, so that no two random choices share a stream.
_SHUFFLE, _BATCH, _REPLACE, _KEEP = 1, 2, 3, 4


def keyed_rng(*key: int) -> np.random.Generator:
    """A generator that depends only on the key: the same draw in any process, worker or resumed run."""
    return np.random.default_rng([int(part) for part in key])


@dataclasses.dataclass(frozen=True)
class Draw:
    """One clip of a batch: which item, whether its labels are used, and the keys of its randomness."""

    item: int
    labelled: bool
    crop_key: tuple[int, ...]
    source: int = -1  # index into DataRequest.sources of the batch's source; -1 when not drawn per batch
    present_only: bool = False


def share_of(fraction: float, count: int) -> int:
    """floor(fraction x count), as SemiSupCon's release counts b_s and p_s (``int(96 * b_s)``), without
    float noise taking one off (0.29 x 100 is 28.999... in binary)."""
    return int(math.floor(fraction * count + 1e-9))


def split_pools(labelled: np.ndarray, keep: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labelled pool, unlabelled pool) of item indices: a seeded ``keep`` fraction (p_s, rounded down)
    of the labelled items keeps its labels; the other labelled items join the unlabelled ones.

    The release does the same when the labelled and unlabelled data are one dataset (mucon's one store);
    it drops the labels not kept only when the labelled data is a separate dataset, which a store is not.

    The subset depends only on the seed and the items, never on the number of processes.
    """
    labelled_items = np.flatnonzero(labelled)
    kept = np.sort(keyed_rng(seed, _KEEP).permutation(labelled_items)[: share_of(keep, len(labelled_items))])
    unlabelled = np.setdiff1d(np.arange(len(labelled)), kept)
    return kept, unlabelled


def epoch_steps(pools: list[np.ndarray], counts: list[int], world_size: int = 1) -> tuple[int, int]:
    """(global batches per epoch, the pool that sets it): an epoch is one pass over the largest pool drawn from."""
    main = max(range(len(pools)), key=lambda k: (counts[k] > 0, len(pools[k])))
    return len(pools[main]) // (counts[main] * world_size), main


class PoolBatchSampler(Sampler[list[Draw]]):
    """Batches of ``Draw`` for one process: ``counts[k]`` clips from ``pools[k]`` per batch.

    ``start_position`` is read each time an epoch's iteration starts: the number of batches the run
    has already consumed (its global step times the accumulation), so iteration resumes there.
    ``has_source`` ([items, sources] bool) serves present-only batches: an item without the batch's
    source is replaced by a seeded draw among the items that have it.
    """

    def __init__(
        self,
        pools: list[np.ndarray],
        counts: list[int],
        request: DataRequest,
        seed: int,
        start_position: Callable[[], int] = lambda: 0,
        world_size: int = 1,
        rank: int = 0,
        has_source: np.ndarray | None = None,
        labelled_pool: int | None = None,
    ):
        if len(pools) != len(counts):
            raise ValueError("one count per pool")
        self.pools = [np.asarray(pool, dtype=np.int64) for pool in pools]
        self.counts = list(counts)
        self.request = request
        self.seed = seed
        self.start_position = start_position
        self.world_size = world_size
        self.rank = rank
        self.has_source = has_source
        self.labelled_pool = labelled_pool
        for pool, count in zip(self.pools, self.counts):
            if count and not len(pool):
                raise ValueError("a pool that batches draw from is empty")
        self.steps_per_epoch, main = epoch_steps(self.pools, self.counts, world_size)
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{len(self.pools[main])} items cannot fill one global batch of {self.counts[main] * world_size}"
            )
        if request.present_only_probability and has_source is None:
            raise ValueError("present-only batches need the store's has_source table")
        self._sources_with_items = (
            [np.flatnonzero(has_source[:, s]) for s in range(has_source.shape[1])] if has_source is not None else []
        )
        self._permutations: dict[int, tuple[int, np.ndarray]] = {}  # pool -> (pass, its permutation)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __iter__(self) -> Iterator[list[Draw]]:
        position = self.start_position()
        end_of_epoch = (position // self.steps_per_epoch + 1) * self.steps_per_epoch
        for step in range(position, end_of_epoch):
            yield self.batch(step)

    def _item_at(self, pool: int, position: int) -> int:
        """The pool's stream: a fresh seeded permutation for every pass over the pool."""
        items = self.pools[pool]
        passes, offset = divmod(position, len(items))
        cached_passes, permutation = self._permutations.get(pool, (-1, None))
        if cached_passes != passes:
            permutation = keyed_rng(self.seed, _SHUFFLE, pool, passes).permutation(items)
            self._permutations[pool] = (passes, permutation)
        return int(permutation[offset])

    def batch(self, step: int) -> list[Draw]:
        """This process's clips of global batch number ``step``."""
        source, present_only = -1, False
        if self.request.source_per_batch:
            batch_rng = keyed_rng(self.seed, _BATCH, step)
            source = int(batch_rng.integers(len(self.request.sources)))
            present_only = bool(batch_rng.random() < self.request.present_only_probability)
        draws = []
        for pool, count in enumerate(self.counts):
            first = (step * self.world_size + self.rank) * count
            for position in range(first, first + count):
                item = self._item_at(pool, position)
                if present_only and not self.has_source[item, source]:
                    candidates = self._sources_with_items[source]
                    item = int(candidates[keyed_rng(self.seed, _REPLACE, pool, position).integers(len(candidates))])
                draws.append(Draw(item, pool == self.labelled_pool, (self.seed, pool, position), source, present_only))
        return draws
