import numpy as np
import pytest

from mucon.evaluation import metrics
from mucon.evaluation.bootstrap import Resamples, difference, interval, resampled_scores
from mucon.evaluation.tasks import score_predictions


def resampled_items(resamples, resample):
    """Item indices of one resample, written out: every drawn unit brings all its items."""
    return np.concatenate([np.flatnonzero(resamples.unit_of_item == unit) for unit in resamples.drawn[resample]])


def loop_reference(resamples, score):
    """The metric recomputed on the items of each resample, one resample at a time."""
    return np.array([score(resampled_items(resamples, r)) for r in range(resamples.drawn.shape[0])])


def probe_outputs(task_type, n, rng):
    if task_type == "multilabel":
        targets = (rng.random((n, 4)) < 0.4).astype(np.float32)
        predictions = np.round(rng.random((n, 4)), 1)  # rounded: ties between items, as probes give
        return targets, predictions
    if task_type == "regression":
        targets = rng.normal(size=n)
        return targets, targets[:, None] + rng.normal(size=(n, 1))
    n_classes = 24 if task_type == "key" else 4
    targets = rng.integers(0, n_classes, n)
    predictions = rng.random((n, n_classes))
    predictions[np.arange(n), targets] += rng.random(n)  # better than chance, not perfect
    return targets, predictions


@pytest.mark.parametrize("task_type", ["multiclass", "key", "multilabel", "regression"])
@pytest.mark.parametrize("grouped", [False, True])
def test_vectorised_resampled_scores_equal_the_metrics_recomputed_in_a_loop(task_type, grouped):
    rng = np.random.default_rng(1)
    n = 30
    targets, predictions = probe_outputs(task_type, n, rng)
    groups = [f"piece{i // 3}" for i in range(n)] if grouped else None
    resamples = Resamples.draw(n, groups, n_resamples=40, seed=3)
    vectorised = resampled_scores(task_type, targets, predictions, resamples.counts)
    for metric, values in vectorised.items():
        expected = loop_reference(
            resamples, lambda items: score_predictions(task_type, targets[items], predictions[items])[metric]
        )
        np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-12, err_msg=metric)


@pytest.mark.parametrize("grouped", [False, True])
def test_resampled_retrieval_averages_the_drawn_queries_against_the_whole_split(grouped):
    rng = np.random.default_rng(2)
    n = 24
    embeddings = rng.normal(size=(n, 5))
    labels = np.array([f"g{i % 7}" for i in range(n)])  # g0..g2 have 4 items, the others 3
    labels[0] = "lonely"  # a query without any hit
    per_query = metrics.retrieval_per_query(embeddings, labels)
    resamples = Resamples.draw(n, list(labels) if grouped else None, n_resamples=30, seed=4)
    vectorised = metrics.retrieval_means(per_query, resamples.counts)

    def query_means(items):
        answered = per_query["answered"][items]
        chosen = items[answered]
        return {
            "map": per_query["average_precision"][chosen].mean(),
            "mean_rank_first_hit": per_query["first_hit_rank"][chosen].mean(),
            "precision_at_10": per_query["precision_at_k"][chosen].mean(),
            "cosine_same_group": per_query["cosine_same_sum"][items].sum() / per_query["same_pairs"][items].sum(),
            "cosine_other_group": per_query["cosine_other_sum"][items].sum() / per_query["other_pairs"][items].sum(),
        }

    for metric, values in vectorised.items():
        expected = loop_reference(resamples, lambda items: query_means(items)[metric])
        np.testing.assert_allclose(values, expected, rtol=1e-9, err_msg=metric)
    # Without resampling (every query once) the figures are those of retrieval_metrics.
    full = metrics.retrieval_means(per_query, np.ones((1, n)))
    point = metrics.retrieval_metrics(embeddings, labels)
    for metric, values in full.items():
        assert values[0] == pytest.approx(point[metric])


def test_group_resamples_draw_whole_groups_and_item_resamples_draw_items():
    groups = ["a", "a", "b", "c", "c", "c", ""]
    by_group = Resamples.draw(7, groups, n_resamples=200, seed=0)
    assert by_group.n_units == 4  # a, b, c, and the item without a group on its own
    counts = by_group.counts
    np.testing.assert_array_equal(counts[:, 0], counts[:, 1])
    np.testing.assert_array_equal(counts[:, 3], counts[:, 5])
    assert (counts[:, [0, 2, 3, 6]].sum(axis=1) == 4).all()  # four units drawn per resample
    by_item = Resamples.draw(7, n_resamples=200, seed=0)
    assert by_item.n_units == 7 and (by_item.counts.sum(axis=1) == 7).all()
    np.testing.assert_array_equal(Resamples.draw(7, n_resamples=5, seed=9).drawn,
                                  Resamples.draw(7, n_resamples=5, seed=9).drawn)


def test_interval_is_the_central_95_percent_and_ignores_undefined_resamples():
    values = np.concatenate([np.arange(1000.0), [np.nan] * 10])
    low, high = interval(values)
    assert low == pytest.approx(24.975) and high == pytest.approx(974.025)
    assert np.isnan(interval(np.full(5, np.nan))).all()



def test_an_interval_is_undefined_where_more_than_5_percent_of_the_resamples_are():
    defined = np.linspace(0.0, 1.0, 950)
    assert np.isfinite(interval(np.concatenate([defined, [np.nan] * 50]))).all()  # exactly 5 %: left out
    assert np.isnan(interval(np.concatenate([defined, [np.inf] * 51]))).all()


def test_r2_of_a_resample_that_repeats_one_item_is_undefined_not_a_division_by_rounding_error():
    tempo, predicted = np.array([96.1, 120.3, 88.7]), np.array([[100.0], [115.0], [95.0]])
    counts = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0], [2.0, 1.0, 0.0]])
    r2 = resampled_scores("regression", tempo, predicted, counts)["r2"]
    assert np.isnan(r2[:2]).all()
    assert r2[2] == pytest.approx(metrics.r2_score(tempo, predicted))
    assert r2[3] == pytest.approx(metrics.r2_score(tempo[[0, 0, 1]], predicted[[0, 0, 1]]))


def test_a_tiny_regression_split_has_an_undefined_r2_interval_not_one_of_10_to_the_17():
    rng = np.random.default_rng(0)
    tempo = rng.uniform(60, 180, 3).round(1)  # 1 in 9 resamples of 3 items draws one item 3 times
    predicted = (tempo + rng.normal(0, 10, 3))[:, None]
    counts = Resamples.draw(3, n_resamples=1000, seed=0).counts
    assert np.isnan(interval(resampled_scores("regression", tempo, predicted, counts)["r2"])).all()


def test_a_difference_is_marked_only_when_its_paired_interval_excludes_zero():
    rng = np.random.default_rng(0)
    shared = rng.normal(0.6, 0.05, 1000)  # what the test items do to every model
    # Far apart relative to the resampling noise of the difference: better, and worse the other way.
    assert difference("accuracy", 0.7, 0.6, shared + 0.1, shared)["better"] == 1
    assert difference("accuracy", 0.6, 0.7, shared, shared + 0.1)["better"] == -1
    # A small gap, but paired: the shared part cancels and the difference is still clear.
    assert difference("accuracy", 0.61, 0.6, shared + 0.01 + rng.normal(0, 0.002, 1000), shared)["better"] == 1
    # The same gap between two models whose resample noise is independent is not beyond the interval.
    other = rng.normal(0.6, 0.05, 1000)
    assert difference("accuracy", 0.61, 0.6, other + 0.01, shared)["better"] == 0
    # A lower rank of the first hit is the better one.
    result = difference("mean_rank_first_hit", 2.0, 3.0, shared + 2.0, shared + 3.0)
    assert result["better"] == 1 and result["difference"] == -1.0
    assert result["interval"] == pytest.approx([-1.0, -1.0])
