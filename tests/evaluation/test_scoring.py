import numpy as np

from mucon.evaluation.bootstrap import resampled_scores
from mucon.evaluation.scoring import TaskBootstrap, TaskOutcome
from mucon.evaluation.tasks import Task


def test_bootstrap_weights_each_scored_item_by_its_own_draws_when_some_files_failed_to_decode(tmp_path):
    """Undecodable files drop out of the scored rows; every other item keeps its own column of counts."""
    paths = tuple(f"t{i}.wav" for i in range(10))
    splits = ("train", "train", *["test"] * 8)
    labels = ("low", "high", "low", "high", "low", "high", "low", "high", "low", "high")
    task = Task("register", "multiclass", tmp_path, paths, splits, labels)
    test_rows = task.rows("test")
    failed = {test_rows[0], test_rows[3]}  # the first test file and one in the middle did not decode
    scored = np.array([row for row in test_rows if row not in failed], dtype=np.int64)
    targets = task.targets(scored)
    predictions = np.eye(len(task.classes))[targets]
    predictions[1:] = predictions[1:, ::-1]  # right on the first scored item only
    outcome = TaskOutcome(scores={}, rows=scored, test_predictions={"linear": predictions})
    bootstrap = TaskBootstrap.draw(task, n_resamples=200, seed=0)

    accuracy = bootstrap.resampled(task, outcome)["linear"]["accuracy"]

    drawn = bootstrap.resamples.counts  # [resample, test item in split order]
    own_column = [list(test_rows).index(row) for row in scored]
    expected = drawn[:, own_column[0]] / drawn[:, own_column].sum(axis=1)
    np.testing.assert_allclose(accuracy, expected)
    untouched = resampled_scores("multiclass", targets, predictions, drawn[:, own_column])["accuracy"]
    np.testing.assert_allclose(accuracy, untouched)
