"""A blob larger than a building block is split at local maxima, so one finding never covers a neighbourhood."""

from __future__ import annotations

import numpy as np
from affine import Affine

from core.detection.findings import extract_findings
from core.detection.findings_split import BLOCK_M2, BLOCK_PX, split_region
from core.types import GeoRef

GEOREF = GeoRef("EPSG:32615", Affine(1.0, 0.0, 363000.0, 0.0, -1.0, 4104000.0))  # 1 m pixels


def _field(size: int = 400) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    s = np.full((size, size), 0.2, np.float32)
    hot = (xx >= 50) & (xx < 350) & (yy >= 50) & (yy < 350)  # 300 m x 300 m = 9 ha above the threshold
    peaks = 2.0 + np.exp(-((xx - 120) ** 2 + (yy - 120) ** 2) / 800) + np.exp(-((xx - 280) ** 2 + (yy - 260) ** 2)
                                                                           / 800)
    s[hot] = peaks[hot]
    s[360:380, 360:380] = 3.0  # a small blob: 400 m², never split
    return s


def test_a_neighbourhood_sized_blob_becomes_block_sized_findings():
    found = extract_findings(_field(), 1.0, 1.0, georef=GEOREF, scene_name="s.tif")
    big = [f for f in found if f.area_m2 and f.area_m2 > 500]
    assert len(big) >= 9  # 9 ha in pieces of at most 1 ha
    assert all(f.area_m2 <= BLOCK_M2 * 1.02 for f in found)
    assert abs(sum(f.area_m2 for f in found) - (90_000 + 400)) < 0.02 * 90_400  # nothing lost
    small = [f for f in found if abs(f.area_m2 - 400) < 10]
    assert len(small) == 1


def test_without_georeferencing_the_pixel_limit_applies():
    found = extract_findings(_field(), 1.0, 1.0, georef=None, scene_name="s.jpg")
    assert all(f.area_px <= BLOCK_PX * 1.02 for f in found)
    assert len(found) >= 3


def test_peaks_seed_the_zones():
    region = np.ones((100, 40), bool)
    yy = np.mgrid[0:100, 0:40][0].astype(np.float32)
    scores = np.exp(-((yy - 20) ** 2) / 50) + np.exp(-((yy - 80) ** 2) / 50)
    pieces = split_region(region, scores, max_px=3000, spacing_px=20)
    assert len(pieces) == 2
    assert sum(int(m.sum()) for m, _, _ in pieces) == 4000
    assert split_region(region, scores, max_px=5000, spacing_px=20)[0][0].sum() == 4000  # small enough: whole
