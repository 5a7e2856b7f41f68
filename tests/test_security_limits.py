"""Limits on what a user hands in (issue 12, findings 6-8): archives refused before the disk fills, checkpoints
with non-finite numbers refused, rasters over the pixel cap refused from their header."""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

import core.zip_extract
from core.errors import InputError, TrainingDataError
from core.store import Workspace
from core.zip_extract import safe_extract_zip


# -- 6: archives -------------------------------------------------------------------------------------------------
def test_a_case_archive_bomb_is_refused_before_a_byte_is_written(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = tmp_path / "case.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b'{"format": "bda-workbench-case"}')
        zf.writestr("files/analyses/1/heat.tif", bytes(40_000_000))  # ~1000x: one deflate member at its maximum
    assert bomb.stat().st_size < 100_000

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was being extracted")

    monkeypatch.setattr(core.zip_extract, "_extract", never)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(InputError, match="zip bomb"):
        ws.import_case(bomb)
    assert ws.list_cases() == [] and not any((ws.root / "tmp").iterdir())


def test_one_member_over_its_cap_is_refused(tmp_path: Path) -> None:
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("small.bin", os.urandom(1000))
        zf.writestr("big.bin", os.urandom(2_000_000))
    with pytest.raises(TrainingDataError, match="limit per file"):
        safe_extract_zip(z, tmp_path / "d", max_member_bytes=1e6)
    assert not (tmp_path / "d").exists()
    assert len(safe_extract_zip(z, tmp_path / "ok", max_member_bytes=3e6)) == 2


def test_extraction_leaves_a_reserve_of_free_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = tmp_path / "z.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.bin", os.urandom(3_000_000))
    disk = 100e9
    usage = type(shutil.disk_usage(tmp_path))
    monkeypatch.setattr(core.zip_extract.shutil, "disk_usage", lambda p: usage(int(disk), int(disk - 5e6), int(5e6)))
    with pytest.raises(TrainingDataError, match="must stay free"):  # 3 MB fit in 5 MB, but the disk would be full
        safe_extract_zip(z, tmp_path / "d")
    assert not (tmp_path / "d").exists()


# -- 7: checkpoints ------------------------------------------------------------------------------------------------
def _checkpoint(tmp_path: Path, name: str, poison: str) -> Path:
    """A real fcdd-resnet18 checkpoint with calibration, one weight or calibration value made non-finite."""
    import torch

    from core.models import build_model
    from core.models.checkpoint import save_checkpoint

    net = build_model("fcdd-resnet18", pretrained="none")
    state = net.state_dict()
    cal = {"pixel_q50": 0.1, "pixel_q99": 0.9, "image_q50": 0.2, "image_q99": 0.8, "threshold": 1.5,
           "image_threshold": 1.0, "n_images": 10, "pixel_quantiles": {"0.5": 0.1}, "image_quantiles": {"0.5": 0.2}}
    if poison == "weights":
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = state[key].clone()
        state[key].view(-1)[0] = float("nan")
    elif poison == "inf-weights":
        key = [k for k, v in state.items() if v.is_floating_point()][-1]
        state[key] = torch.full_like(state[key], float("inf"))
    elif poison:
        cal[poison] = float("nan")
    path = tmp_path / name
    save_checkpoint(path, state, {"arch": "fcdd-resnet18", "name": name, "calibration": cal})
    return path


@pytest.mark.parametrize(("poison", "why"), [("weights", "not finite numbers"), ("inf-weights", "not finite"),
                                             ("pixel_q99", "calibration"), ("threshold", "calibration")])
def test_checkpoints_with_non_finite_numbers_are_refused(tmp_path: Path, poison: str, why: str) -> None:
    from core.errors import CheckpointError
    from core.models.checkpoint import load_model, read_checkpoint

    path = _checkpoint(tmp_path, "bad.pt", poison)
    with pytest.raises(CheckpointError, match=why):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="retrain"):
        load_model(path)
    assert read_checkpoint(_checkpoint(tmp_path, "good.pt", ""))[1]["calibration"]["threshold"] == 1.5


def test_calibration_that_does_not_increase_is_refused() -> None:
    from core.errors import CheckpointError
    from core.models.checkpoint import check_calibration

    good = {"pixel_q50": 0.1, "pixel_q99": 0.9, "image_q50": 0.2, "image_q99": 0.8, "threshold": 1.5,
            "image_threshold": 1.0}
    check_calibration(good)
    with pytest.raises(CheckpointError, match="not above its medians"):
        check_calibration({**good, "pixel_q99": 0.1})
    with pytest.raises(CheckpointError, match="missing image_q50"):
        check_calibration({k: v for k, v in good.items() if k != "image_q50"})


def test_an_uploaded_nan_checkpoint_is_not_registered(tmp_path: Path) -> None:
    from core.errors import CheckpointError
    from core.learn.model_import import import_checkpoint

    ws = Workspace(tmp_path / "ws")
    bad = _checkpoint(tmp_path, "nan.pt", "weights")
    with pytest.raises(CheckpointError, match="not finite"):
        import_checkpoint(ws, "nan.pt", bad.read_bytes())
    assert ws.list_models() == []


# -- 8: rasters ----------------------------------------------------------------------------------------------------
def _tiled(path: Path, width: int, height: int, block: int = 512) -> Path:
    """A tiled, deflate GeoTIFF of ``width`` x ``height`` with no block written (sparse: a few KB on disk)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32615", transform=from_origin(360000, 4100000, 0.5, 0.5), tiled=True,
                       blockxsize=block, blockysize=block, compress="deflate", sparse_ok=True, BIGTIFF="YES"):
        pass
    return path


@pytest.mark.timeout(60)
def test_a_huge_sparse_tiled_geotiff_is_refused_from_its_header(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from core.imagery.reader import open_scene

    monkeypatch.delenv("BDA_MAX_PIXELS", raising=False)
    huge = _tiled(tmp_path / "huge.tif", 100_000, 100_000)
    assert huge.stat().st_size < 2_000_000
    t0 = time.perf_counter()
    with pytest.raises(InputError, match="gigapixels this server reads"):
        open_scene(huge)
    assert time.perf_counter() - t0 < 5


def test_the_pixel_cap_is_configurable_and_covers_frames_and_heatmaps(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np
    from PIL import Image

    from core.detection.heatmap import read_heatmap
    from core.imagery.reader import open_scene
    from core.report.rasters import read_scores

    tile = _tiled(tmp_path / "tile.tif", 2048, 2048, block=256)
    Image.fromarray(np.full((1200, 1000, 3), 90, np.uint8)).save(tmp_path / "frame.jpg")
    monkeypatch.setenv("BDA_MAX_PIXELS", "1e6")
    for path in (tile, tmp_path / "frame.jpg"):
        with pytest.raises(InputError, match="BDA_MAX_PIXELS"):
            open_scene(path)
    with pytest.raises(InputError, match="BDA_MAX_PIXELS"):
        read_heatmap(tile, preview_max=256)
    assert read_scores(tile, max_side=64) is None  # the report leaves it out instead of reading it
    monkeypatch.setenv("BDA_MAX_PIXELS", "5e6")
    assert open_scene(tmp_path / "frame.jpg").width == 1000
    monkeypatch.setenv("BDA_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="not a pixel count"):
        open_scene(tmp_path / "frame.jpg")
