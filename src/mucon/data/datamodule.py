"""Training batches from a prepared store, cut the way a method's ``DataRequest`` asks.

Workers only slice memory maps; augmentation, spectrograms and views are made on the model's device
by the method. Crops travel as int16 to halve the host-to-device traffic. Which clips form a batch,
and every random cut, come from ``mucon.data.sampler`` as pure functions of the seed and the batch
position, so resumed runs and any number of workers or processes see the same data.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from mucon.audio.store import AudioStore
from mucon.config import DataConfig
from mucon.data.composition import BatchComposition
from mucon.data.request import ADJACENT, ANYWHERE, DataRequest
from mucon.data.sampler import Draw, PoolBatchSampler, epoch_steps, keyed_rng

# Present-only batches look for a segment where the batch's source sounds; tries per clip before
# settling for the loudest segment seen (its presence flag then says the truth).
PRESENT_SEGMENT_TRIES = 8
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def label_vocabulary(values: np.ndarray, separator: str) -> list[str]:
    """Sorted distinct labels of a column whose cells hold zero or more `separator`-joined labels."""
    vocabulary = set()
    for cell in values:
        vocabulary.update(label for label in str(cell).split(separator) if label)
    return sorted(vocabulary)


def multi_hot(values: np.ndarray, vocabulary: list[str], separator: str) -> np.ndarray:
    """[items, classes] uint8 rows; an empty cell (an unlabelled item) is an all-zero row."""
    position = {label: i for i, label in enumerate(vocabulary)}
    rows = np.zeros((len(values), len(vocabulary)), dtype=np.uint8)
    for item, cell in enumerate(values):
        for label in str(cell).split(separator):
            if label in position:
                rows[item, position[label]] = 1
    return rows


def labelled_flags(values: np.ndarray, where: str) -> np.ndarray:
    """A labelled-flag column (1/0, true/false, yes/no) as bool; anything else is an error naming it."""
    flags = np.zeros(len(values), dtype=bool)
    for item, cell in enumerate(values):
        text = str(cell).strip().lower()
        if text not in _TRUE | _FALSE:
            raise ValueError(f"{where}: row {item + 1} has labelled flag {cell!r}; use 1/0, true/false or yes/no")
        flags[item] = text in _TRUE
    return flags


class ClipDataset(Dataset):
    """Maps a ``Draw`` to one clip: crops of the mixture, requested stems with presence, labels."""

    def __init__(self, store: AudioStore, request: DataRequest, label_rows: np.ndarray | None = None):
        self.store = store
        self.request = request
        self.label_rows = label_rows
        # read (or, for an older store, measured) here, once, and pickled into the workers with the dataset
        self.levels = store.levels if request.item_level else None

    def __len__(self) -> int:
        return len(self.store)

    def _excerpt_start(self, draw: Draw, rng: np.random.Generator) -> int:
        excerpt = self.request.excerpt_samples
        last_start = max(0, int(self.store.lengths[draw.item]) - excerpt)
        if not draw.present_only:
            return int(rng.integers(0, last_start + 1))
        name = [self.request.sources[draw.source]]
        best_start, best_activity = 0, -1.0
        for start in rng.integers(0, last_start + 1, size=PRESENT_SEGMENT_TRIES):
            activity = float(self.store.source_activity(draw.item, int(start), excerpt, name)[0])
            if activity > self.request.presence_threshold:
                return int(start)
            if activity > best_activity:
                best_start, best_activity = int(start), activity
        return best_start

    def _crop_starts(self, start: int, count: int, rng: np.random.Generator) -> list[int]:
        """Independent crop starts inside the excerpt."""
        room = self.request.excerpt_samples - self.request.crop_samples
        return [start + int(offset) for offset in rng.integers(0, room + 1, size=count)]

    def _starts_anywhere(self, item: int, count: int, rng: np.random.Generator) -> list[int]:
        """Independent crop starts, each uniform over the whole item."""
        last_start = max(0, int(self.store.lengths[item]) - self.request.crop_samples)
        return [int(start) for start in rng.integers(0, last_start + 1, size=count)]

    def __getitem__(self, draw: Draw) -> dict:
        """The clip of ``draw``; its ``start`` is where its excerpt begins (for ``anywhere``, its first view)."""
        request = self.request
        rng = keyed_rng(*draw.crop_key)
        if request.layout == ANYWHERE:
            starts = self._starts_anywhere(draw.item, request.views, rng)
            start = starts[0]
        elif request.layout == ADJACENT:
            start = self._excerpt_start(draw, rng)
            starts = [start + view * request.crop_samples for view in range(request.views)]
        else:
            start = self._excerpt_start(draw, rng)
            starts = self._crop_starts(start, request.views, rng)
        audio = np.stack([self.store.read(draw.item, view_start, request.crop_samples) for view_start in starts])
        clip = {"audio": torch.from_numpy(audio), "index": draw.item, "start": start}
        if request.item_level:
            clip["level"] = torch.tensor(self.levels[draw.item, 0])
        if request.sources:
            names = [request.sources[draw.source]] if request.source_per_batch else list(request.sources)
            stems = [
                self.store.read_sources(draw.item, source_start, request.crop_samples, [name])[0]
                for name, source_start in zip(names, self._crop_starts(start, len(names), rng))
            ]
            activity = self.store.source_activity(draw.item, start, request.excerpt_samples, names)
            clip["sources"] = torch.from_numpy(np.stack(stems))
            if request.item_level:
                columns = [1 + self.store.source_names.index(name) for name in names]
                clip["source_level"] = torch.from_numpy(self.levels[draw.item, columns])
            clip["source_present"] = torch.from_numpy(activity > request.presence_threshold)
            clip["source_index"] = draw.source
        if request.labels:
            row = self.label_rows[draw.item] if self.label_rows is not None and draw.labelled else None
            width = self.label_rows.shape[1] if self.label_rows is not None else 0
            clip["labels"] = torch.from_numpy(row.copy() if row is not None else np.zeros(width, dtype=np.uint8))
            clip["labelled"] = row is not None
        return clip


class StoreDataModule(L.LightningDataModule):
    """Serves the running method's ``DataRequest`` from a store, on any number of processes.

    Every process draws its own slice of each global batch; the last partial batch of an epoch is
    never formed, so every process gathers equal rows.
    """

    def __init__(self, config: DataConfig, seed: int = 0):
        super().__init__()
        if not config.store:
            raise ValueError("no store given: pass --store STORE_DIR (made by `mucon prepare`)")
        self.config = config
        self.seed = seed
        self.store = AudioStore(config.store)
        if self.store.sample_rate != config.sample_rate:
            raise ValueError(
                f"{config.store}: the store holds {self.store.sample_rate} Hz audio but the config expects "
                f"{config.sample_rate} Hz; prepare it with --sample-rate {config.sample_rate}"
            )
        if isinstance(config.crops_per_item, bool) or config.crops_per_item < 1:
            raise ValueError(f"data.crops_per_item must be 1 or more, got {config.crops_per_item!r}")
        if len(self.store) * config.crops_per_item < config.batch_size:
            raise self._too_small(len(self.store), config.batch_size, len(self.store) * config.crops_per_item)
        self.vocabulary: list[str] = []
        self.label_rows: np.ndarray | None = None
        self.labelled = np.zeros(len(self.store), dtype=bool)
        self._compositions: dict[DataRequest, BatchComposition] = {}
        if config.label_column:
            column = self._column(config.label_column)
            self.vocabulary = label_vocabulary(column, config.label_separator)
            self.label_rows = multi_hot(column, self.vocabulary, config.label_separator)
            if config.labelled_column:
                self.labelled = labelled_flags(self._column(config.labelled_column), f"{config.store}/labels.csv")
            else:
                self.labelled = np.array([bool(str(cell).strip()) for cell in column])

    def _column(self, name: str) -> np.ndarray:
        labels = self.store.labels
        if labels is None or name not in labels:
            known = sorted(labels) if labels else []
            raise ValueError(f"{self.config.store}: no column {name!r} in labels.csv (columns: {known})")
        return np.asarray(labels[name])

    def _too_small(self, items: int, clips: int, fitting_batch: int) -> ValueError:
        """A store too small for one batch, with the two settings that would fit."""
        crops = self.config.crops_per_item
        batch = f"set data.batch_size to {fitting_batch} or less, or " if fitting_batch >= 2 else "set "
        return ValueError(
            f"{self.config.store}: {items} items give {items * crops} clips an epoch (data.crops_per_item={crops}), "
            f"fewer than one batch of {clips}; {batch}data.crops_per_item to {-(-clips // items)} "
            "(crops of each item an epoch)"
        )

    def _fitting_batch_size(self, request: DataRequest, world_size: int) -> int:
        """The largest data.batch_size below the configured one whose batches fill an epoch (0: none)."""
        for batch in range(self.config.batch_size - 1, 1, -1):
            composition = self._compose(request, batch)
            pools = [np.tile(pool, self.config.crops_per_item) for pool in composition.pools]
            if epoch_steps(pools, list(composition.counts), world_size)[0]:
                return batch
        return 0

    def composition(self, request: DataRequest) -> BatchComposition:
        """How one process's batch of data.batch_size clips mixes labelled and unlabelled items for
        ``request``: worked out once, so that the batches, the run's log and the method read the same."""
        if request not in self._compositions:
            self._compositions[request] = self._compose(request, self.config.batch_size)
        return self._compositions[request]

    def _compose(self, request: DataRequest, batch_size: int) -> BatchComposition:
        return BatchComposition.of(request, batch_size, self.labelled, self.label_rows, self.seed, self.config.store)

    def _check_sources(self, request: DataRequest) -> np.ndarray | None:
        """The store's has-stem table for the requested sources, or an error saying how to get them."""
        if not request.sources:
            return None
        missing = [name for name in request.sources if name not in self.store.source_names]
        if missing:
            held = ", ".join(self.store.source_names) or "none"
            raise ValueError(
                f"{self.config.store}: the method needs the separated sources {', '.join(missing)}, but the store holds "
                f"{held}. Make a multitrack store with `mucon prepare` on a multitrack layout (MUSDB18-HQ, "
                "Slakh2100, the built-in corpus), or run `mucon separate` on your audio and prepare its output"
            )
        columns = [self.store.source_names.index(name) for name in request.sources]
        return np.asarray(self.store.has_source)[:, columns]

    def batch_sampler(self, request: DataRequest, world_size: int = 1, rank: int = 0,
                      start_position=lambda: 0) -> PoolBatchSampler:
        composition = self.composition(request)
        counts = list(composition.counts)
        if sum(counts) * world_size < 2:
            raise ValueError(
                f"a global batch of {sum(counts) * world_size} clip leaves every anchor without a negative; "
                "set data.batch_size to 2 or more"
            )
        # each item appears crops_per_item times in its pool: an epoch cuts that many clips of it
        pools = [np.tile(pool, self.config.crops_per_item) for pool in composition.pools]
        steps, main = epoch_steps(pools, counts, world_size)
        if steps < 1:
            raise self._too_small(len(pools[main]) // self.config.crops_per_item, counts[main] * world_size,
                                  self._fitting_batch_size(request, world_size))
        return PoolBatchSampler(
            pools, counts, request, self.seed, start_position, world_size, rank,
            has_source=self._check_sources(request), labelled_pool=composition.labelled_pool,
        )

    def train_dataloader(self) -> DataLoader:
        """Batches for the method being trained, starting where the run is (its global step)."""
        trainer = self.trainer
        request = trainer.lightning_module.data_request
        sampler = self.batch_sampler(
            request, trainer.world_size, trainer.global_rank,
            start_position=lambda: trainer.global_step * trainer.accumulate_grad_batches,
        )
        if request.labels:
            composition = self.composition(request)
            if composition.labels_unused:
                # SemiSupCon's release trained pure self-supervision silently when labels were missing
                rank_zero_warn(f"{composition.description}, although the method asks for labelled_share (b_s) "
                               f"{request.labelled_share}")
            else:
                rank_zero_info(composition.description)
        return DataLoader(
            ClipDataset(self.store, request, self.label_rows),
            batch_sampler=sampler,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
        )
