"""The store's sample format: int16 PCM, float in [-1, 1)."""

from __future__ import annotations

import numpy as np

from mucon.audio.store_format import to_float, to_int16


def test_int16_conversion_clips_and_round_trips_within_half_a_step():
    audio = np.array([-1.5, -1.0, -0.25, 0.0, 0.3, 0.99999, 1.0, 2.0], np.float32)
    pcm = to_int16(audio)
    np.testing.assert_array_equal(pcm[[0, 1, 6, 7]], [-32768, -32768, 32767, 32767])
    assert np.abs(to_float(pcm)[1:5] - audio[1:5]).max() <= 0.5 / 32768
    assert to_float(pcm).dtype == np.float32
