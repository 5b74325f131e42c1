"""Probes: small heads trained on frozen embeddings, the standard measure of what an encoder learnt.

Chunks in, tracks out: a track contributes one training example per chunk (window), each with the
track's label, which multiplies the examples of a small dataset; a track's prediction is the mean
of its chunks' predictions (probabilities, or values for regression). With one chunk per track
this is plain track-level probing. By default (mucon's own recipe) features are standardised with
the training chunks' mean and standard deviation, training is Adam on minibatches over every chunk,
with early stopping on the validation loss, and the head of the best validation epoch is the one
returned; ``fit_probe``'s options give the published recipes of ``protocols`` (one random chunk
per track per epoch, a plateau schedule, stopping on a validation metric, the last head).
Everything random (initialisation, shuffling, chunk draws, a carved validation split) comes from
``seed``, so a probe is reproducible.

The kNN probe (``fit_knn_probe``) trains nothing: a chunk's prediction is the mean of the targets of
its k most cosine-similar training chunks, k chosen on the validation split. It shows what the
embedding space itself holds, as X-ARES reports it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PROBE_KINDS = ("multiclass", "multilabel", "regression")
TRAINED_HEADS = ("linear", "mlp")
KNN_HEAD = "knn"
PROBE_HEADS = (*TRAINED_HEADS, KNN_HEAD)
KNN_GRID = (1, 3, 5, 10, 20)  # the k a kNN probe chooses from on the validation split


@dataclasses.dataclass
class ChunkFeatures:
    """Chunk embeddings ``[chunks, D]`` and, for each chunk, the index of its track (0 .. n_tracks - 1)."""

    features: np.ndarray
    track: np.ndarray
    n_tracks: int

    def __post_init__(self):
        self.features = np.asarray(self.features, dtype=np.float32)
        self.track = np.asarray(self.track, dtype=np.int64)
        if len(self.features) != len(self.track):
            raise ValueError("one track index per chunk is needed")
        if self.n_tracks and np.bincount(self.track, minlength=self.n_tracks).min() == 0:
            raise ValueError("every track needs at least one chunk")

    @classmethod
    def one_per_track(cls, features: np.ndarray) -> ChunkFeatures:
        return cls(features, np.arange(len(features)), len(features))

    def subset(self, tracks: np.ndarray) -> ChunkFeatures:
        """The chunks of ``tracks``, renumbered 0 .. len(tracks) - 1 in that order."""
        new_index = np.full(self.n_tracks, -1)
        new_index[tracks] = np.arange(len(tracks))
        keep = new_index[self.track] >= 0
        return ChunkFeatures(self.features[keep], new_index[self.track[keep]], len(tracks))


def build_probe_head(
    head: str, in_dim: int, out_dim: int, hidden_dim: int | None = 512, *, bias: bool = True, dropout: float = 0.0
) -> nn.Module:
    """Linear, or an MLP in -> hidden (``None``: in_dim) -> ReLU -> out; ``dropout`` after the hidden
    layer's linear map (MARBLE's order: linear, dropout, ReLU)."""
    if head == "linear":
        return nn.Linear(in_dim, out_dim, bias=bias)
    if head == "mlp":
        hidden_dim = hidden_dim or in_dim
        hidden = [nn.Linear(in_dim, hidden_dim, bias=bias), *([nn.Dropout(dropout)] if dropout else []), nn.ReLU()]
        return nn.Sequential(*hidden, nn.Linear(hidden_dim, out_dim, bias=bias))
    if head == KNN_HEAD:
        raise ValueError("the knn head has no parameters to build: see fit_knn_probe")
    raise ValueError(f"head must be one of {PROBE_HEADS}, got {head!r}")


def _loss(kind: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if kind == "multiclass":
        return F.cross_entropy(outputs, targets)
    if kind == "multilabel":
        return F.binary_cross_entropy_with_logits(outputs, targets)
    return F.mse_loss(outputs, targets)


def _predictions(kind: str, outputs: torch.Tensor) -> np.ndarray:
    """Class probabilities, tag probabilities, or (standardised) values."""
    if kind == "multiclass":
        return outputs.softmax(dim=1).numpy()
    if kind == "multilabel":
        return outputs.sigmoid().numpy()
    return outputs.numpy()


def _track_means(values: np.ndarray, track: np.ndarray, n_tracks: int) -> np.ndarray:
    sums = np.zeros((n_tracks, values.shape[1]))
    np.add.at(sums, track, values)
    return sums / np.bincount(track, minlength=n_tracks)[:, None]


class TrackPredictions:
    """A track's prediction from its chunks, for any probe with ``predict_chunks``."""

    def predict_chunks(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, chunks: ChunkFeatures) -> np.ndarray:
        """Per track: the mean of its chunks' predictions."""
        return _track_means(self.predict_chunks(chunks.features), chunks.track, chunks.n_tracks)

    def predict_mean_embedding(self, chunks: ChunkFeatures) -> np.ndarray:
        """Per track: the probe on the mean of its chunks' embeddings (SemiSupCon's test)."""
        return self.predict_chunks(_track_means(chunks.features, chunks.track, chunks.n_tracks))


def _feature_scaling(train: ChunkFeatures, standardise: bool) -> tuple[np.ndarray, np.ndarray]:
    """The training chunks' mean and deviation, or (``standardise`` off) zeros and ones."""
    dim = train.features.shape[1]
    if not standardise:
        return np.zeros(dim, np.float32), np.ones(dim, np.float32)
    return train.features.mean(axis=0), train.features.std(axis=0) + 1e-6


@dataclasses.dataclass
class Probe(TrackPredictions):
    """A trained head with the standardisation it was trained with."""

    kind: str
    head: nn.Module
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray  # regression targets are standardised too; zeros/ones otherwise
    target_std: np.ndarray
    best_epoch: int
    epochs_run: int

    @torch.no_grad()
    def predict_chunks(self, features: np.ndarray) -> np.ndarray:
        """Per chunk: class probabilities, tag probabilities, or values in the target's units."""
        inputs = torch.from_numpy((np.asarray(features, np.float32) - self.feature_mean) / self.feature_std)
        predictions = _predictions(self.kind, self.head.eval()(inputs))
        return predictions * self.target_std + self.target_mean if self.kind == "regression" else predictions


def carve_validation(n_tracks: int, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation track indices when a task declares no validation split."""
    order = np.random.default_rng(seed).permutation(n_tracks)
    n_valid = max(1, int(round(fraction * n_tracks))) if n_tracks > 1 else 0
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


DEFAULT_LEARNING_RATES = {"linear": 1e-2, "mlp": 1e-3}
SAMPLINGS = ("every-chunk", "one-chunk-per-epoch")  # what an epoch trains on (validates on, too)


def random_chunk_per_track(chunks: ChunkFeatures, rng: np.random.Generator) -> np.ndarray:
    """The rows of one chunk per track, each drawn uniformly among its track's chunks, in track order."""
    order = np.argsort(chunks.track, kind="stable")
    counts = np.bincount(chunks.track, minlength=chunks.n_tracks)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order[starts + (rng.random(chunks.n_tracks) * counts).astype(np.int64)]


def _epoch_chunks(chunks: ChunkFeatures, sampling: str, rng: np.random.Generator) -> np.ndarray:
    """The chunk rows of an epoch: all of them, or one drawn at random per track."""
    return np.arange(len(chunks.track)) if sampling == "every-chunk" else random_chunk_per_track(chunks, rng)


def fit_probe(
    kind: str,
    train: ChunkFeatures,
    train_targets: np.ndarray,
    valid: ChunkFeatures,
    valid_targets: np.ndarray,
    n_outputs: int,
    *,
    head: str = "linear",
    seed: int = 0,
    learning_rate: float | None = None,
    weight_decay: float = 0.0,
    batch_size: int = 1024,
    max_epochs: int = 300,
    patience: int = 20,
    min_improvement: float = 1e-4,
    hidden_dim: int | None = 512,
    bias: bool = True,
    dropout: float = 0.0,
    standardise: bool = True,
    sampling: str = "every-chunk",
    monitor: Callable[[np.ndarray, np.ndarray], float] | None = None,
    plateau: tuple[float, int] | None = None,
    restore_best: bool = True,
) -> Probe:
    """Train a head on chunks; stop once the validation loss has not improved by ``min_improvement``
    for ``patience`` epochs (on separable data the loss creeps down forever without that margin).

    ``*_targets`` are per track: class indices (multiclass), multi-hot rows (multilabel) or values
    (regression, one column or several). ``learning_rate`` defaults to 1e-2 for a linear head and
    1e-3 for the MLP; the default batch makes a small task full-batch. The other options make the
    published recipes (``protocols``): the MLP's ``hidden_dim`` (None: the input's), ``bias`` and
    ``dropout``; ``standardise`` the features; ``sampling`` one chunk per track per epoch (train and
    valid); ``monitor(valid targets, valid track predictions)``, higher is better, stops on a metric
    instead of the loss; ``plateau`` = (factor, patience) scales the learning rate when the monitored
    figure stalls; ``restore_best=False`` returns the last epoch's head.
    """
    if kind not in PROBE_KINDS:
        raise ValueError(f"kind must be one of {PROBE_KINDS}, got {kind!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if valid.n_tracks == 0:
        raise ValueError("early stopping needs validation tracks (see carve_validation)")
    feature_mean, feature_std = _feature_scaling(train, standardise)
    train_targets, valid_targets = np.asarray(train_targets), np.asarray(valid_targets)
    if kind == "regression":
        train_targets = train_targets.reshape(len(train_targets), -1).astype(np.float32)
        valid_targets = valid_targets.reshape(len(valid_targets), -1).astype(np.float32)
        target_mean, target_std = train_targets.mean(axis=0), train_targets.std(axis=0) + 1e-6
        train_targets = (train_targets - target_mean) / target_std
        valid_targets = (valid_targets - target_mean) / target_std
        n_outputs = train_targets.shape[1]
    else:
        target_mean, target_std = np.zeros(1, np.float32), np.ones(1, np.float32)

    def tensors(chunks: ChunkFeatures, targets: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = torch.from_numpy((chunks.features - feature_mean) / feature_std)
        per_chunk = targets[chunks.track]
        return inputs, torch.from_numpy(per_chunk if kind == "multiclass" else per_chunk.astype(np.float32))

    (train_x, train_y), (valid_x, valid_y) = tensors(train, train_targets), tensors(valid, valid_targets)
    generator = torch.Generator().manual_seed(seed)
    draws = np.random.default_rng([seed, 1])  # the chunk of each track an epoch trains and validates on
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_probe_head(head, train_x.shape[1], n_outputs, hidden_dim, bias=bias, dropout=dropout)
    optimiser = torch.optim.Adam(
        model.parameters(), lr=learning_rate or DEFAULT_LEARNING_RATES[head], weight_decay=weight_decay
    )
    schedule = None if plateau is None else torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, mode="min", factor=plateau[0], patience=plateau[1])

    def valid_figure(rows: np.ndarray) -> float:
        """What stopping watches, lower is better: the loss, or minus the monitored metric."""
        with torch.no_grad():
            outputs = model(valid_x[rows])
            if monitor is None:
                return _loss(kind, outputs, valid_y[rows]).item()
            predictions = _track_means(_predictions(kind, outputs), valid.track[rows], valid.n_tracks)
        return -float(monitor(valid_targets, predictions))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # heads this small only lose time to thread hand-offs
    try:
        best_figure, best_state, best_epoch, epoch = float("inf"), copy.deepcopy(model.state_dict()), 0, 0
        for epoch in range(1, max_epochs + 1):
            model.train()
            rows = torch.from_numpy(_epoch_chunks(train, sampling, draws))
            for batch in rows[torch.randperm(len(rows), generator=generator)].split(batch_size):
                optimiser.zero_grad()
                _loss(kind, model(train_x[batch]), train_y[batch]).backward()
                optimiser.step()
            model.eval()
            figure = valid_figure(_epoch_chunks(valid, sampling, draws))
            if schedule is not None:
                schedule.step(figure)
            if figure < best_figure - min_improvement:
                best_figure, best_state, best_epoch = figure, copy.deepcopy(model.state_dict()), epoch
            elif epoch - best_epoch >= patience:
                break
    finally:
        torch.set_num_threads(threads)
    if restore_best:
        model.load_state_dict(best_state)
    return Probe(kind, model.eval(), feature_mean, feature_std, target_mean, target_std, best_epoch, epoch)


def _unit_rows(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """Standardised rows scaled to unit length, so that a dot product is their cosine similarity."""
    return F.normalize(torch.from_numpy(((features - mean) / std).astype(np.float32)), dim=1)


@dataclasses.dataclass
class KnnProbe(TrackPredictions):
    """Training chunks and their targets; a query chunk predicts the mean target of its ``k`` most
    cosine-similar training chunks: vote shares of the classes (one-hot targets), tag shares
    (multilabel) or the mean value (regression). The same predict methods as ``Probe``."""

    kind: str
    train_features: torch.Tensor  # standardised, unit rows
    train_targets: np.ndarray  # per training chunk: one-hot rows, multi-hot rows or values
    feature_mean: np.ndarray
    feature_std: np.ndarray
    k: int
    valid_figures: dict[int, float]  # the validation figure of each k tried, higher is better

    def neighbour_means(self, features: np.ndarray, ks: tuple[int, ...], block: int = 1024) -> dict[int, np.ndarray]:
        """Per query chunk, the mean target of its k nearest training chunks, for each k of ``ks``;
        queries go in blocks so that the similarity matrix stays small."""
        queries = _unit_rows(np.asarray(features, np.float32), self.feature_mean, self.feature_std)
        most = max(ks)
        means = {k: np.empty((len(queries), self.train_targets.shape[1])) for k in ks}
        for start in range(0, len(queries), block):
            similarity = queries[start:start + block] @ self.train_features.T
            nearest = similarity.topk(most, dim=1).indices.numpy()  # most similar first
            running = np.cumsum(self.train_targets[nearest], axis=1)  # [queries, most, outputs]
            for k in ks:
                means[k][start:start + block] = running[:, k - 1] / k
        return means

    def predict_chunks(self, features: np.ndarray) -> np.ndarray:
        return self.neighbour_means(features, (self.k,))[self.k]


def fit_knn_probe(
    kind: str,
    train: ChunkFeatures,
    train_targets: np.ndarray,
    valid: ChunkFeatures,
    valid_targets: np.ndarray,
    n_outputs: int,
    monitor: Callable[[np.ndarray, np.ndarray], float],
    *,
    grid: tuple[int, ...] = KNN_GRID,
    standardise: bool = True,
) -> KnnProbe:
    """A kNN probe whose k is the one of ``grid`` (capped at the training chunks) that scores best on
    the validation tracks by ``monitor(valid targets, valid track predictions)``, higher is better;
    ties go to the smaller k. Targets are per track, as ``fit_probe`` takes them. ``standardise`` the
    features with the training chunks' mean and deviation first, as the trained heads see them, so
    that one large-valued dimension does not decide every similarity."""
    if kind not in PROBE_KINDS:
        raise ValueError(f"kind must be one of {PROBE_KINDS}, got {kind!r}")
    if valid.n_tracks == 0:
        raise ValueError("choosing k needs validation tracks (see carve_validation)")
    feature_mean, feature_std = _feature_scaling(train, standardise)
    train_targets = np.asarray(train_targets)
    if kind == "multiclass":
        per_track = np.eye(n_outputs)[train_targets]
    else:
        per_track = train_targets.reshape(len(train_targets), -1).astype(np.float64)
    probe = KnnProbe(kind, _unit_rows(train.features, feature_mean, feature_std), per_track[train.track],
                     feature_mean, feature_std, k=0, valid_figures={})
    ks = tuple(sorted({min(k, len(train.track)) for k in grid}))
    valid_chunks = probe.neighbour_means(valid.features, ks)
    probe.valid_figures = {k: float(monitor(np.asarray(valid_targets),
                                            _track_means(valid_chunks[k], valid.track, valid.n_tracks)))
                           for k in ks}
    probe.k = max(ks, key=lambda k: (np.nan_to_num(probe.valid_figures[k], nan=-np.inf), -k))
    return probe
