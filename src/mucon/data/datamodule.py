"""Training batches from a prepared store: random crops sliced from memory-mapped shards.

Workers only slice memory; augmentation, spectrograms and views are made on the model's device by the
method. Crops travel as int16 to halve the host-to-device traffic.
"""

from __future__ import annotations

import os

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mucon.audio.store import AudioStore
from mucon.config import DataConfig


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


class RandomCropDataset(Dataset):
    """Item i is a random crop of `crop_samples` from store item i, with its index and label row."""

    def __init__(self, store: AudioStore, crop_samples: int, label_rows: np.ndarray | None = None):
        self.store = store
        self.crop_samples = crop_samples
        self.label_rows = label_rows
        self._rng: np.random.Generator | None = None
        self._rng_owner: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.store)

    def _generator(self) -> np.random.Generator:
        """One generator per worker process, seeded from the seed the loader gave that worker."""
        owner = (os.getpid(), torch.initial_seed())
        if self._rng is None or self._rng_owner != owner:
            self._rng = np.random.default_rng(torch.initial_seed())
            self._rng_owner = owner
        return self._rng

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = int(self.store.random_starts(np.array([index]), self.crop_samples, self._generator())[0])
        item = {"audio": torch.from_numpy(self.store.read(index, start, self.crop_samples)), "index": index}
        if self.label_rows is not None:
            item["labels"] = torch.from_numpy(self.label_rows[index])
        return item


class StoreDataModule(L.LightningDataModule):
    """Shuffled batches of random crops; the last partial batch is dropped so every process gathers equal rows."""

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
        if len(self.store) < config.batch_size:
            raise ValueError(f"{config.store}: {len(self.store)} items, fewer than one batch of {config.batch_size}")
        self.vocabulary: list[str] = []
        self.label_rows = None
        if config.label_column:
            labels = self.store.labels
            if labels is None or config.label_column not in labels:
                raise ValueError(f"{config.store}: no label column {config.label_column!r} in labels.csv")
            column = np.asarray(labels[config.label_column])
            self.vocabulary = label_vocabulary(column, config.label_separator)
            self.label_rows = multi_hot(column, self.vocabulary, config.label_separator)

    def train_dataloader(self) -> DataLoader:
        """Crops as long as the method being trained asks for."""
        dataset = RandomCropDataset(self.store, self.trainer.lightning_module.crop_samples, self.label_rows)
        return DataLoader(
            dataset,
            batch_size=self.config.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.config.num_workers,
            persistent_workers=self.config.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )
