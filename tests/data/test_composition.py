"""How labelled and unlabelled items mix in a batch, decided in one place: pools, counts and the log line."""

import numpy as np
import pytest

from mucon.data.composition import BatchComposition
from mucon.data.request import DataRequest
from mucon.data.synthetic import synthetic_batch


def composition_of(share: float, batch_size: int) -> BatchComposition:
    """Batches from 40 items, every other one labelled with one tag."""
    labelled = np.arange(40) % 2 == 0
    request = DataRequest(100, labels=True, labelled_share=share)
    return BatchComposition.of(request, batch_size, labelled, labelled[:, None].astype(np.uint8), seed=0, store="s")


@pytest.mark.parametrize("share, batch_size, labelled_clips", [(0.7, 8, 5), (0.9, 4, 3), (0.6, 96, 57), (0.29, 100, 29)])
def test_the_labelled_clips_of_a_batch_are_b_s_times_the_batch_rounded_down_as_the_release_counts(
        share, batch_size, labelled_clips):
    """SemiSupCon's release takes int(B * b_s): 5.6 clips are 5, not 6; 0.29 x 100 (28.999... in binary) is 29."""
    composition = composition_of(share, batch_size)
    assert composition.counts == (labelled_clips, batch_size - labelled_clips) and composition.labelled_pool == 0
    assert composition.description.startswith(f"semi-supervised: {labelled_clips} of {batch_size} clips per batch")
    synthetic = synthetic_batch(DataRequest(100, labels=True, labelled_share=share), batch_size)
    assert int(synthetic["labelled"].sum()) == labelled_clips  # the batches that time a method's step agree

