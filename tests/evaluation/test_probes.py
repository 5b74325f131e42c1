import numpy as np
import pytest

from mucon.evaluation.metrics import accuracy, r2_score, roc_auc_macro
from mucon.evaluation.probes import KNN_GRID, ChunkFeatures, carve_validation, fit_knn_probe, fit_probe

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

    tags = lambda y: np.stack([y > 100, y > 110], axis=1).astype(np.float32)
    tagger = fit_probe("multilabel", train, tags(y_train), valid, tags(y_valid), 2, seed=0)
    assert roc_auc_macro(tags(y_test), tagger.predict(test)) > 0.95


def test_carved_validation_split_is_disjoint_seeded_and_about_a_fifth():
    train, valid = carve_validation(50, seed=1)
    assert len(valid) == 10 and not set(train) & set(valid) and len(train) + len(valid) == 50
    np.testing.assert_array_equal(valid, carve_validation(50, seed=1)[1])


def test_every_track_needs_a_chunk():
    with pytest.raises(ValueError, match="at least one chunk"):
        ChunkFeatures(np.zeros((2, 3)), np.array([0, 0]), 2)


def hand_computed_knn(train_features, train_labels, queries, k):
    """Cosine kNN written out: the k most similar training rows vote, shares per class."""
    unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)
    nearest = np.argsort(-(unit(queries) @ unit(train_features).T), axis=1, kind="stable")[:, :k]
    return np.stack([np.bincount(train_labels[row], minlength=N_CLASSES) / k for row in nearest])


def test_knn_predictions_equal_a_hand_computed_cosine_knn_with_the_valid_best_k():
    data = splits()
    (train, train_labels), (valid, valid_labels), (test, _) = data["train"], data["valid"], data["test"]
    accuracy_of = lambda labels, predictions: accuracy(labels, predictions.argmax(axis=1))
    probe = fit_knn_probe("multiclass", train, train_labels, valid, valid_labels, N_CLASSES, accuracy_of,
                          standardise=False)
    chunk_labels = train_labels[train.track]
    by_hand = {k: accuracy_of(valid_labels, np.stack([
        hand_computed_knn(train.features, chunk_labels, valid.features[valid.track == track], k).mean(axis=0)
        for track in range(valid.n_tracks)])) for k in KNN_GRID}
    assert probe.valid_figures == pytest.approx(by_hand)
    assert probe.k == max(KNN_GRID, key=lambda k: (by_hand[k], -k))
    np.testing.assert_allclose(probe.predict_chunks(test.features),
                               hand_computed_knn(train.features, chunk_labels, test.features, probe.k))


def test_knn_k_is_the_one_that_scores_best_on_valid_not_the_largest():
    """Each valid track sits on one training chunk of its class amid a crowd of another: only k = 1 is right."""
    train_features = np.array([[1.0, 0.0], [0.0, 1.0], *[[0.6, 0.8]] * 4, *[[0.8, 0.6]] * 4])
    train_labels = np.array([0, 1, *[0] * 4, *[1] * 4])
    train = ChunkFeatures.one_per_track(train_features)
    valid = ChunkFeatures.one_per_track(np.array([[1.0, 0.05], [0.05, 1.0]]))
    accuracy_of = lambda labels, predictions: accuracy(labels, predictions.argmax(axis=1))
    probe = fit_knn_probe("multiclass", train, train_labels, valid, np.array([0, 1]), 2, accuracy_of,
                          standardise=False)
    assert probe.k == 1
    assert set(probe.valid_figures) == {1, 3, 5, 10}  # 20 is capped at the 10 training chunks


def test_knn_regression_and_multilabel_predict_the_neighbours_mean_target():
    train = ChunkFeatures.one_per_track(np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]))
    valid = ChunkFeatures.one_per_track(np.array([[1.0, 0.02]]))
    first_value = lambda targets, predictions: -abs(predictions[0, 0] - targets[0, 0])
    values = fit_knn_probe("regression", train, np.array([2.0, 4.0, 10.0]), valid, np.array([[3.0]]), 1,
                           first_value, grid=(1, 2), standardise=False)
    assert values.k == 2 and values.predict(valid)[0].tolist() == pytest.approx([3.0])
    tags = np.array([[1, 0], [1, 1], [0, 1]])
    first_tags = lambda targets, predictions: -np.abs(predictions - targets).sum()
    multilabel = fit_knn_probe("multilabel", train, tags, valid, np.array([[1, 0.5]]), 2, first_tags,
                               grid=(1, 2), standardise=False)
    assert multilabel.k == 2 and multilabel.predict(valid)[0].tolist() == pytest.approx([1.0, 0.5])
