import numpy as np
import pytest

from mucon.evaluation.metrics import accuracy, r2_score, roc_auc_macro
from mucon.evaluation.probes import ChunkFeatures, carve_validation, fit_probe

N_CLASSES, DIM, CHUNKS = 4, 24, 3


def labelled_chunks(labels: np.ndarray, seed: int, noise: float = 1.0) -> ChunkFeatures:
    """Chunk embeddings that carry the label linearly: a class direction plus noise, 3 chunks per track."""
    directions = np.random.default_rng(0).normal(size=(N_CLASSES, DIM))
    rng = np.random.default_rng(seed)
    features = np.repeat(directions[labels], CHUNKS, axis=0) + noise * rng.normal(size=(len(labels) * CHUNKS, DIM))
    return ChunkFeatures(features, np.repeat(np.arange(len(labels)), CHUNKS), len(labels))


def splits(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = {name: rng.integers(0, N_CLASSES, n) for name, n in (("train", 120), ("valid", 40), ("test", 200))}
    return {name: (labelled_chunks(y, seed=i + 1), y) for i, (name, y) in enumerate(labels.items())}


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_embeddings_that_carry_the_label_linearly_score_near_one(head):
    data = splits()
    probe = fit_probe("multiclass", *data["train"], *data["valid"], N_CLASSES, head=head, seed=0)
    test_chunks, test_labels = data["test"]
    assert accuracy(test_labels, probe.predict(test_chunks).argmax(axis=1)) > 0.95


def test_shuffled_labels_score_near_chance():
    data = splits()
    rng = np.random.default_rng(9)
    shuffled = {name: (chunks, rng.permutation(labels)) for name, (chunks, labels) in data.items()}
    probe = fit_probe("multiclass", *shuffled["train"], *shuffled["valid"], N_CLASSES, head="linear", seed=0)
    test_chunks, test_labels = shuffled["test"]
    assert abs(accuracy(test_labels, probe.predict(test_chunks).argmax(axis=1)) - 1 / N_CLASSES) < 0.1


def test_same_seed_gives_the_same_probe_and_another_seed_a_different_one():
    data = splits()
    first, second, other = (
        fit_probe("multiclass", *data["train"], *data["valid"], N_CLASSES, head="mlp", seed=seed, max_epochs=5)
        for seed in (3, 3, 4)
    )
    test_chunks, _ = data["test"]
    np.testing.assert_array_equal(first.predict(test_chunks), second.predict(test_chunks))
    assert not np.allclose(first.predict(test_chunks), other.predict(test_chunks))


def test_track_prediction_is_the_mean_of_its_chunk_predictions():
    data = splits()
    probe = fit_probe("multiclass", *data["train"], *data["valid"], N_CLASSES, seed=0, max_epochs=5)
    chunks = ChunkFeatures(data["test"][0].features[:5], np.array([1, 0, 1, 1, 0]), 2)
    per_chunk = probe.predict_chunks(chunks.features)
    np.testing.assert_allclose(probe.predict(chunks), [per_chunk[[1, 4]].mean(0), per_chunk[[0, 2, 3]].mean(0)], rtol=1e-6)


def test_early_stopping_restores_the_head_of_the_best_validation_epoch():
    data = splits()
    # Noisy, tiny training data: the validation loss turns up early and training stops well before the limit.
    small = data["train"][0].subset(np.arange(12))
    probe = fit_probe("multiclass", small, data["train"][1][:12], *data["valid"], N_CLASSES, head="mlp", seed=0, patience=5)
    assert probe.best_epoch < probe.epochs_run < 300
    assert probe.epochs_run - probe.best_epoch == 5


def test_regression_and_multilabel_probes_learn_linear_targets():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=DIM)

    def make(n, seed):
        features = np.random.default_rng(seed).normal(size=(n, DIM))
        return ChunkFeatures.one_per_track(features), features @ weights * 10 + 100

    (train, y_train), (valid, y_valid), (test, y_test) = make(200, 1), make(50, 2), make(100, 3)
    regression = fit_probe("regression", train, y_train, valid, y_valid, 1, seed=0)
    assert r2_score(y_test, regression.predict(test)) > 0.95  # targets are un-standardised on the way out

    tags = lambda y: np.stack([y > 100, y > 110], axis=1).astype(np.float32)  # noqa: E731
    tagger = fit_probe("multilabel", train, tags(y_train), valid, tags(y_valid), 2, seed=0)
    assert roc_auc_macro(tags(y_test), tagger.predict(test)) > 0.95


def test_carved_validation_split_is_disjoint_seeded_and_about_a_fifth():
    train, valid = carve_validation(50, seed=1)
    assert len(valid) == 10 and not set(train) & set(valid) and len(train) + len(valid) == 50
    np.testing.assert_array_equal(valid, carve_validation(50, seed=1)[1])


def test_every_track_needs_a_chunk():
    with pytest.raises(ValueError, match="at least one chunk"):
        ChunkFeatures(np.zeros((2, 3)), np.array([0, 0]), 2)
