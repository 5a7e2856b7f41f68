"""Score calibration from held-out normal statistics."""

from __future__ import annotations

import numpy as np
import pytest

from core.detection.calibration import Calibration


def test_a_handful_of_identical_calibration_images_cannot_blow_up_image_scores() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.normal(10.0, 2.0, 100_000)
    cal = Calibration.fit(pixels, np.full(8, 12.0))  # one pre-event image cut into 8 near-identical patches
    p_spread = cal.pixel_q99 - cal.pixel_q50
    assert cal.image_q99 - cal.image_q50 == pytest.approx(0.25 * p_spread)
    assert cal.image(12.0 + p_spread) == pytest.approx(4.0)  # on the pixels' scale, not 10^5
    wide = Calibration.fit(pixels, rng.normal(12.0, 5.0, 500))  # enough spread of its own: left alone
    assert wide.image_q99 - wide.image_q50 > 0.25 * (wide.pixel_q99 - wide.pixel_q50)
    assert wide.image_q99 == pytest.approx(wide.image_quantiles["0.99"])
