"""Probes: small heads trained on frozen embeddings, the standard measure of what an encoder learnt.

Chunks in, tracks out: a track contributes one training example per chunk (window), each with the
track's label, which multiplies the examples of a small dataset; a track's prediction is the mean
of its chunks' predictions (probabilities, or values for regression). With one chunk per track
this is plain track-level probing. Features are standardised with the training chunks' mean and
standard deviation. Training is Adam on minibatches with early stopping on the validation loss;
the head of the best validation epoch is the one returned. Everything random (initialisation,
shuffling, a carved validation split) comes from ``seed``, so a probe is reproducible.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PROBE_KINDS = ("multiclass", "multilabel", "regression")
HEADS = ("linear", "mlp")


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


def build_head(head: str, in_dim: int, out_dim: int, hidden_dim: int = 512) -> nn.Module:
    """Linear, or SemiSupCon's MLP (in -> 512 -> ReLU -> out)."""
    if head == "linear":
        return nn.Linear(in_dim, out_dim)
    if head == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")


def _loss(kind: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if kind == "multiclass":
        return F.cross_entropy(outputs, targets)
    if kind == "multilabel":
        return F.binary_cross_entropy_with_logits(outputs, targets)
    return F.mse_loss(outputs, targets)


@dataclasses.dataclass
class Probe:
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
        outputs = self.head.eval()(inputs)
        if self.kind == "multiclass":
            return outputs.softmax(dim=1).numpy()
        if self.kind == "multilabel":
            return outputs.sigmoid().numpy()
        return outputs.numpy() * self.target_std + self.target_mean

    def predict(self, chunks: ChunkFeatures) -> np.ndarray:
        """Per track: the mean of its chunks' predictions."""
        per_chunk = self.predict_chunks(chunks.features)
        sums = np.zeros((chunks.n_tracks, per_chunk.shape[1]))
        np.add.at(sums, chunks.track, per_chunk)
        return sums / np.bincount(chunks.track, minlength=chunks.n_tracks)[:, None]


def carve_validation(n_tracks: int, fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation track indices when a task declares no validation split."""
    order = np.random.default_rng(seed).permutation(n_tracks)
    n_valid = max(1, int(round(fraction * n_tracks))) if n_tracks > 1 else 0
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


DEFAULT_LEARNING_RATES = {"linear": 1e-2, "mlp": 1e-3}


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
) -> Probe:
    """Train a head on chunks; stop once the validation loss has not improved by ``min_improvement``
    for ``patience`` epochs (on separable data the loss creeps down forever without that margin).

    ``*_targets`` are per track: class indices (multiclass), multi-hot rows (multilabel) or values
    (regression, one column or several). ``learning_rate`` defaults to 1e-2 for a linear head and
    1e-3 for the MLP; the default batch makes a small task full-batch.
    """
    if kind not in PROBE_KINDS:
        raise ValueError(f"kind must be one of {PROBE_KINDS}, got {kind!r}")
    if valid.n_tracks == 0:
        raise ValueError("early stopping needs validation tracks (see carve_validation)")
    feature_mean = train.features.mean(axis=0)
    feature_std = train.features.std(axis=0) + 1e-6
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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_head(head, train_x.shape[1], n_outputs)
    optimiser = torch.optim.Adam(
        model.parameters(), lr=learning_rate or DEFAULT_LEARNING_RATES[head], weight_decay=weight_decay
    )

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # heads this small only lose time to thread hand-offs
    try:
        best_loss, best_state, best_epoch, epoch = float("inf"), copy.deepcopy(model.state_dict()), 0, 0
        for epoch in range(1, max_epochs + 1):
            model.train()
            for batch in torch.randperm(len(train_x), generator=generator).split(batch_size):
                optimiser.zero_grad()
                _loss(kind, model(train_x[batch]), train_y[batch]).backward()
                optimiser.step()
            model.eval()
            with torch.no_grad():
                valid_loss = _loss(kind, model(valid_x), valid_y).item()
            if valid_loss < best_loss - min_improvement:
                best_loss, best_state, best_epoch = valid_loss, copy.deepcopy(model.state_dict()), epoch
            elif epoch - best_epoch >= patience:
                break
    finally:
        torch.set_num_threads(threads)
    model.load_state_dict(best_state)
    return Probe(kind, model.eval(), feature_mean, feature_std, target_mean, target_std, best_epoch, epoch)
