import itertools

import mir_eval
import numpy as np
import pytest
from sklearn import metrics as sk

from mucon.evaluation import metrics


@pytest.mark.parametrize("tied_scores", [False, True])
def test_macro_roc_auc_and_average_precision_match_scikit_learn_on_random_tags(tied_scores):
    rng = np.random.default_rng(1)
    for _ in range(5):
        labels = rng.integers(0, 2, size=(60, 7))
        labels[:2] = [[0] * 7, [1] * 7]  # every tag has a positive and a negative
        scores = rng.integers(0, 4, size=labels.shape).astype(float) if tied_scores else rng.random(labels.shape)
        assert metrics.roc_auc_macro(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores, average="macro"))
        assert metrics.average_precision_macro(labels, scores) == pytest.approx(
            sk.average_precision_score(labels, scores, average="macro")
        )


def test_macro_tag_metrics_skip_a_tag_without_positives_instead_of_failing():
    labels = np.array([[1, 0], [0, 0], [1, 0], [0, 0]])
    scores = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5], [0.1, 0.2]])
    assert metrics.roc_auc_macro(labels, scores) == pytest.approx(1.0)
    assert metrics.average_precision_macro(labels, scores) == pytest.approx(1.0)


def test_accuracy_and_macro_f1_match_scikit_learn_including_classes_never_predicted():
    rng = np.random.default_rng(2)
    for _ in range(5):
        truth, predicted = rng.integers(0, 6, 80), rng.integers(0, 8, 80)
        assert metrics.accuracy(truth, predicted) == pytest.approx(sk.accuracy_score(truth, predicted))
        assert metrics.macro_f1(truth, predicted) == pytest.approx(sk.f1_score(truth, predicted, average="macro"))


def test_r2_matches_scikit_learn_for_one_and_several_outputs():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(50, 3))
    predicted = truth + rng.normal(size=truth.shape)
    assert metrics.r2_score(truth, predicted) == pytest.approx(sk.r2_score(truth, predicted))
    assert metrics.r2_score(truth[:, 0], predicted[:, 0]) == pytest.approx(sk.r2_score(truth[:, 0], predicted[:, 0]))


def test_confusion_matrix_matches_scikit_learn():
    rng = np.random.default_rng(4)
    truth, predicted = rng.integers(0, 5, 100), rng.integers(0, 5, 100)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(truth, predicted, 5), sk.confusion_matrix(truth, predicted, labels=range(5))
    )


def test_key_weighted_score_matches_mir_eval_on_every_pair_of_the_24_keys():
    pairs = np.array(list(itertools.product(range(24), repeat=2)))
    expected = [mir_eval.key.weighted_score(metrics.KEY_NAMES[r], metrics.KEY_NAMES[e]) for r, e in pairs]
    np.testing.assert_allclose(metrics.key_weighted_scores(pairs[:, 0], pairs[:, 1]), expected)


def test_key_weighted_score_matches_mir_eval_on_random_predictions():
    rng = np.random.default_rng(5)
    reference, estimate = rng.integers(0, 24, 300), rng.integers(0, 24, 300)
    expected = np.mean([mir_eval.key.weighted_score(metrics.KEY_NAMES[r], metrics.KEY_NAMES[e]) for r, e in zip(reference, estimate)])
    assert metrics.key_weighted_scores(reference, estimate).mean() == pytest.approx(expected)


@pytest.mark.parametrize(
    "name, index",
    [("C major", 0), ("A minor", 21), ("Bb major", 10), ("A# major", 10), ("f#:min", 18), ("Cb major", 11), ("E minor", 16)],
)
def test_key_names_parse_with_sharps_flats_and_short_modes(name, index):
    assert metrics.key_index(name) == index


def test_a_malformed_key_name_is_rejected():
    with pytest.raises(ValueError, match="not a key name"):
        metrics.key_index("H dorian")


def test_retrieval_metrics_on_a_hand_built_example_match_hand_computed_values():
    # Four items on the unit circle at 0, 10, 100 and 180 degrees, in groups a, b, a, b.
    angles = np.radians([0.0, 10.0, 100.0, 180.0])
    embeddings = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    groups = np.array(["a", "b", "a", "b"])
    # Rankings by cosine: 0 -> [1, 2, 3], 1 -> [0, 2, 3], 2 -> [3, 1, 0], 3 -> [2, 1, 0];
    # the one hit of each query sits at rank 2, 3, 3, 2.
    result = metrics.retrieval_metrics(embeddings, groups, k=2)
    assert result["map"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3 + 1 / 2) / 4)
    assert result["mean_rank_first_hit"] == pytest.approx(2.5)
    assert result["precision_at_2"] == pytest.approx((1 / 2 + 0 + 0 + 1 / 2) / 4)
    cos = lambda degrees: np.cos(np.radians(degrees))  # noqa: E731
    assert result["cosine_same_group"] == pytest.approx(np.mean([cos(100), cos(170)]))
    assert result["cosine_other_group"] == pytest.approx(np.mean([cos(10), cos(180), cos(90), cos(80)]))
    assert result["queries"] == 4


def test_retrieval_metrics_ignore_queries_without_any_hit():
    embeddings = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    result = metrics.retrieval_metrics(embeddings, np.array(["a", "a", "lonely"]))
    assert result["queries"] == 2
    assert result["map"] == 1.0 and result["mean_rank_first_hit"] == 1.0


def test_retrieval_without_any_possible_hit_scores_nothing_instead_of_failing():
    for embeddings, groups in [(np.zeros((0, 4)), np.array([])), (np.eye(3), np.array(["a", "b", "c"]))]:
        scores = metrics.retrieval_metrics(embeddings, groups)
        assert scores["queries"] == 0
        assert np.isnan(scores["map"]) and np.isnan(scores["mean_rank_first_hit"])


@pytest.mark.parametrize("k", [2, 10])
def test_random_ranking_means_are_the_average_of_the_retrieval_figures_over_every_ranking(k):
    groups = ["a", "a", "b", "b", "b", "lonely"]
    tied = np.ones((len(groups), 3))  # every similarity tied: each query ranks the others in the items' order
    figures = ("map", "mean_rank_first_hit", f"precision_at_{k}")
    every_order = [metrics.retrieval_metrics(tied, np.array(order), k=k) for order in itertools.permutations(groups)]
    expected = {figure: np.mean([scores[figure] for scores in every_order]) for figure in figures}
    chance = metrics.random_ranking_means(np.array(groups), k=k)
    assert chance.keys() == {*figures, "queries"} and chance["queries"] == 5
    for figure in figures:
        assert chance[figure] == pytest.approx(expected[figure])
