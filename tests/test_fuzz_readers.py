"""Property-based fuzzing of the readers: any byte string, or a mutated real file, either opens as a Scene whose
pixels can be read or is refused with a CoreError. Never another exception, never a hang (bounded by hypothesis)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from rasterio.transform import from_origin

from core.errors import CoreError
from core.imagery.reader import open_scene


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _geotiff() -> bytes:
    arr = np.random.default_rng(2).integers(0, 255, (3, 48, 40), dtype=np.uint8)
    with rasterio.MemoryFile() as mem:
        with mem.open(driver="GTiff", width=40, height=48, count=3, dtype="uint8", crs="EPSG:32615",
                      transform=from_origin(500000, 4100000, 0.6, 0.6), tiled=True, blockxsize=16,
                      blockysize=16) as ds:
            ds.write(arr)
        return mem.read()


SEEDS = {"png": _png(), "jpg": _jpeg(), "tif": _geotiff()}


def _check(tmp_path, data: bytes, ext: str) -> None:
    path = tmp_path / f"fuzz.{ext}"
    path.write_bytes(data)
    try:
        scene = open_scene(path)
    except CoreError:
        return
    try:
        rgb, valid = scene.read()
        assert rgb.dtype == np.uint8 and rgb.shape == (scene.height, scene.width, 3)
        assert valid.shape == (scene.height, scene.width)
    except CoreError:
        pass
    finally:
        scene.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096), ext=st.sampled_from(["jpg", "png", "tif"]))
def test_random_bytes(tmp_path, data, ext):
    _check(tmp_path, data, ext)


@pytest.mark.parametrize("kind", sorted(SEEDS))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=12),
       cut=st.floats(0.05, 1.0))
def test_mutated_real_formats(tmp_path, kind, edits, cut):
    data = bytearray(SEEDS[kind])
    for pos, val in edits:
        data[int(pos * len(data))] = val
    data = bytes(data[: max(1, int(len(data) * cut))])
    _check(tmp_path, data, kind)
