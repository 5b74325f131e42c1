"""Probe protocols, each named for where it comes from: what a probe trains on, which head and
optimiser, when it stops, and how a track's prediction is made at test.

``mucon`` is mucon's own (the default): the task decides the windows (a benchmark task: the mean
of up to 64 evenly spread windows; a task of your own: every window, predictions averaged),
features are standardised, Adam until the validation loss stalls. The others follow the authors'
released code, read at the commits named in ``source``:

- ``semisupcon``: the head trains on one random chunk per track, drawn again every epoch, and
  at test sees the mean embedding of a track's first 64 chunks (``finetuning.py``).
- ``clmr``: one random crop per track, extracted once, trains a linear head; at test the chunk
  sigmoids (softmax for one class) are averaged, the last chunk dropped (``linear_evaluation.py``).
- ``marble``: time-averaged features, an MLP [512] with dropout 0.2, Adam 1e-3 with a plateau
  schedule and early stopping on the validation metric (MARBLE's ``MTT_base_config.yaml``).

mucon's windows lie on a grid of the encoder's input length; a "random chunk" here is a random
window of that grid (the releases crop at any sample), and "the last chunk dropped" drops a
track's last window, the zero-padded one, when it has several. ``PROTOCOLS`` is the one table
that both the code and the README's table (``protocol_table``) are made from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from mucon.evaluation.probes import KNN_HEAD, ChunkFeatures, Probe, random_chunk_per_track
from mucon.evaluation.report import markdown_table

EMBEDDINGS = ("task", "every-window", "track-mean")  # which window embeddings of a track are kept
TEST_AGGREGATIONS = ("mean-prediction", "mean-embedding")
TRAIN_EXAMPLES = ("every-chunk", "one-chunk-per-epoch", "one-chunk-drawn-once")


@dataclasses.dataclass(frozen=True)
class HeadRecipe:
    """A head of a protocol: its hidden width (``None``: none, a linear head; 0: the input's width),
    whether its layers have biases, its dropout and its learning rate."""

    hidden_dim: int | None
    learning_rate: float
    bias: bool = True
    dropout: float = 0.0

    def describe(self, name: str) -> str:
        if self.hidden_dim is None:
            shape = "linear"
        else:
            width = "input width" if self.hidden_dim == 0 else str(self.hidden_dim)
            shape = f"MLP [{width}]" + (f", dropout {self.dropout:g}" if self.dropout else "")
        return f"{name}: {shape}" + ("" if self.bias else ", no bias") + f", lr {self.learning_rate:g}"


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Everything that defines a probe protocol (see the module docstring)."""

    name: str
    source: str
    embedding: str  # "task": the task's cap and averaging; every window; or their mean per track
    drop_last_window: bool  # a track with several windows loses its last (zero-padded) one
    train_examples: str  # per track, per epoch (validation likewise)
    test_aggregation: str  # mean of the chunks' predictions, or the head on the chunks' mean
    test_max_windows: int | None  # the first this many windows at test (None: all kept)
    heads: Mapping[str, HeadRecipe]  # the first is the default head of a report
    standardise: bool  # features scaled by the training chunks' mean and deviation
    weight_decay: float
    batch_size: int
    max_epochs: int
    monitor: str  # "valid loss" or "valid metric" (the task's primary metric): what stopping watches
    patience: int
    min_improvement: float
    plateau: tuple[float, int] | None  # (factor, patience) of a learning-rate plateau schedule
    restore_best: bool  # the head of the best validation epoch, or the last one

    def __post_init__(self):
        if self.embedding not in EMBEDDINGS or self.train_examples not in TRAIN_EXAMPLES or \
                self.test_aggregation not in TEST_AGGREGATIONS or self.monitor not in ("valid loss", "valid metric"):
            raise ValueError(f"protocol {self.name!r} has an unknown setting")

    def embedding_of(self, task) -> tuple[int | None, bool]:
        """``(max_windows, average)`` of the window embeddings a task's files are cached with."""
        if self.embedding == "task":
            return task.max_chunks, task.average_chunks
        return None, self.embedding == "track-mean"

    def select(self, chunks: ChunkFeatures, split: str, seed: int) -> ChunkFeatures:
        """The chunks a split uses: the last window dropped, the test cap, and (train and valid of
        ``one-chunk-drawn-once``) one random chunk per track, drawn once from ``seed``."""
        keep = np.ones(len(chunks.track), dtype=bool)
        counts = np.bincount(chunks.track, minlength=chunks.n_tracks)
        rank = _rank_within_track(chunks.track, chunks.n_tracks)
        if self.drop_last_window:
            keep &= (rank < counts[chunks.track] - 1) | (counts[chunks.track] == 1)
        if split == "test" and self.test_max_windows is not None:
            keep &= rank < self.test_max_windows
        kept = ChunkFeatures(chunks.features[keep], chunks.track[keep], chunks.n_tracks)
        if split != "test" and self.train_examples == "one-chunk-drawn-once":
            rows = random_chunk_per_track(kept, np.random.default_rng([seed, 2, int(split == "valid")]))
            kept = ChunkFeatures(kept.features[rows], kept.track[rows], kept.n_tracks)
        return kept

    def check_head(self, head: str) -> None:
        """The protocol's own heads, and the parameter-free kNN probe, which every protocol offers."""
        if head not in self.heads and head != KNN_HEAD:
            raise ValueError(f"protocol {self.name} has the heads {[*self.heads, KNN_HEAD]}, not {head!r}")

    def fit_options(self, head: str, monitor: Callable[[np.ndarray, np.ndarray], float]) -> dict:
        """``fit_probe``'s keyword arguments for ``head``; ``monitor`` scores validation predictions."""
        if head not in self.heads:
            raise ValueError(f"protocol {self.name} has the heads {list(self.heads)}, not {head!r}")
        recipe = self.heads[head]
        return {
            "learning_rate": recipe.learning_rate, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
            "max_epochs": self.max_epochs, "patience": self.patience, "min_improvement": self.min_improvement,
            "hidden_dim": recipe.hidden_dim or None, "bias": recipe.bias, "dropout": recipe.dropout,
            "standardise": self.standardise,
            "sampling": "one-chunk-per-epoch" if self.train_examples == "one-chunk-per-epoch" else "every-chunk",
            "monitor": monitor if self.monitor == "valid metric" else None,
            "plateau": self.plateau, "restore_best": self.restore_best,
        }

    def predict(self, probe: Probe, chunks: ChunkFeatures) -> np.ndarray:
        """Track predictions of the test chunks ``chunks`` (all of a track's windows, as embedded)."""
        test = self.select(chunks, "test", seed=0)  # test chunks are chosen, never drawn: the seed is unused
        return probe.predict(test) if self.test_aggregation == "mean-prediction" else probe.predict_mean_embedding(test)

    def describe(self) -> dict[str, str]:
        """The protocol in words, one entry per column of the README's table."""
        windows = {"task": "the task's (benchmark: mean of up to 64 evenly spread; else every window)",
                   "every-window": "every window", "track-mean": "the mean of every window"}[self.embedding]
        if self.drop_last_window:
            windows += ", the last (padded) one dropped"
        train = {"every-chunk": "the track's mean" if self.embedding == "track-mean" else "every chunk",
                 "one-chunk-per-epoch": "one random chunk per track, drawn again each epoch",
                 "one-chunk-drawn-once": "one random chunk per track, drawn once"}
        test = {"mean-prediction": "mean of the chunks' predictions",
                "mean-embedding": "head on the mean of the chunks' embeddings"}[self.test_aggregation]
        if self.test_max_windows:
            test += f" (the first {self.test_max_windows} chunks)"
        stopping = (f"{self.monitor}, patience {self.patience}, at most {self.max_epochs} epochs, "
                    f"{'best' if self.restore_best else 'last'} epoch's head")
        schedule = f"; plateau x{self.plateau[0]:g} after {self.plateau[1]}" if self.plateau else ""
        return {
            "protocol": f"`{self.name}`", "source": self.source, "windows": windows,
            "train examples": train[self.train_examples], "test": test,
            "heads": "; ".join(recipe.describe(name) for name, recipe in self.heads.items()),
            "optimiser": f"Adam, weight decay {self.weight_decay:g}, batch {self.batch_size}{schedule}"
                         + ("; features standardised" if self.standardise else ""),
            "stopping": stopping,
        }


def _rank_within_track(track: np.ndarray, n_tracks: int) -> np.ndarray:
    """Each chunk's position among its track's chunks (0, 1, ...), in the order they are stored."""
    order = np.argsort(track, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(track, minlength=n_tracks))[:-1]])
    rank = np.empty(len(track), dtype=np.int64)
    rank[order] = np.arange(len(track)) - starts[track[order]]
    return rank


PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol("mucon", "mucon's own", "task", False, "every-chunk", "mean-prediction", None,
                 {"linear": HeadRecipe(None, 1e-2), "mlp": HeadRecipe(512, 1e-3)},
                 standardise=True, weight_decay=0.0, batch_size=1024, max_epochs=300, monitor="valid loss",
                 patience=20, min_improvement=1e-4, plateau=None, restore_best=True),
        Protocol("semisupcon", "SemiSupCon 47b15b7: finetuning.py, finetune_MTAT.yaml", "every-window", True,
                 "one-chunk-per-epoch", "mean-embedding", 64,
                 {"mlp": HeadRecipe(512, 3e-4, bias=False), "linear": HeadRecipe(None, 3e-4, bias=False)},
                 standardise=False, weight_decay=1e-6, batch_size=64, max_epochs=100, monitor="valid loss",
                 patience=15, min_improvement=0.0, plateau=None, restore_best=True),
        Protocol("clmr", "CLMR 423414d: linear_evaluation.py, evaluation.py, config.yaml", "every-window", True,
                 "one-chunk-drawn-once", "mean-prediction", None,
                 {"linear": HeadRecipe(None, 1e-3), "mlp": HeadRecipe(0, 1e-3)},
                 standardise=False, weight_decay=1e-6, batch_size=48, max_epochs=200, monitor="valid loss",
                 patience=10, min_improvement=0.0, plateau=(0.1, 5), restore_best=False),
        Protocol("marble", "MARBLE d9300e3: MTT_base_config.yaml, probers.py", "track-mean", False,
                 "every-chunk", "mean-embedding", None,
                 {"mlp": HeadRecipe(512, 1e-3, dropout=0.2), "linear": HeadRecipe(None, 1e-3)},
                 standardise=False, weight_decay=0.0, batch_size=64, max_epochs=100, monitor="valid metric",
                 patience=10, min_improvement=0.0, plateau=(0.5, 3), restore_best=True),
    )
}
DEFAULT_PROTOCOL = "mucon"


def resolve_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def protocol_table() -> str:
    """The README's table of the protocols, from ``PROTOCOLS`` (a test keeps the two equal)."""
    rows = [protocol.describe() for protocol in PROTOCOLS.values()]
    return markdown_table(list(rows[0]), [list(row.values()) for row in rows])
