"""bf16 on CPUs that support it: same heatmaps and findings as fp32 (on a generated scene in the fast lane, on real
imagery in the full suite), and a switch back to fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.assets import MODELS
from core.detection.detector import Detector, cpu_has_bf16, use_bf16
from core.errors import InputError
from core.imagery.reader import open_scene
from tests.support.area import write_area

CHIP = Path("geotiff/joplin_tornado_xview2deploy/chips_aligned/post/0_post.tif")  #: in ../shared/data


def test_precision_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setenv("BDA_PRECISION", "fp32")
    assert not use_bf16(cpu) and not use_bf16(torch.device("cuda"))
    monkeypatch.setenv("BDA_PRECISION", "bf16")
    assert use_bf16(cpu)
    monkeypatch.delenv("BDA_PRECISION")
    assert use_bf16(cpu) == cpu_has_bf16() and use_bf16(torch.device("cuda"))
    assert not use_bf16(cpu, "fp32")
    with pytest.raises(InputError, match="precision must be"):
        use_bf16(cpu, "fp8")


def _bf16_matches_fp32(path: Path, rgb: np.ndarray) -> None:
    """The bf16 heatmap of ``rgb`` (calibrated units) follows the fp32 one, and their findings agree."""
    tiles = rgb[None]
    fp32 = Detector.load(path, device="cpu", precision="fp32")
    bf16 = Detector.load(path, device="cpu", precision="bf16")
    assert not fp32.amp and bf16.amp and bf16.info()["precision"] == "bf16"
    a = fp32.calibration.pixel(fp32.predict(tiles)[0][0])
    b = bf16.calibration.pixel(bf16.predict(tiles)[0][0])
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    thr = fp32.calibration.threshold
    fa, fb = a >= thr, b >= thr
    if fa.sum() > 100:  # the finding areas agree (intersection over union of the thresholded maps)
        assert (fa & fb).sum() / (fa | fb).sum() > 0.9
    assert float(np.abs(a - b).max()) < 0.1 * max(float(np.abs(a).max()), 1.0)


def _read(path: Path) -> np.ndarray:
    scene = open_scene(path)
    try:
        rgb, _ = scene.read()
    finally:
        scene.close()
    return rgb


def test_bf16_heatmaps_and_findings_match_fp32_on_a_generated_scene(tmp_path: Path) -> None:
    """The fast lane's check: the bundled fast model on a generated 256² scene with debris."""
    _bf16_matches_fp32(MODELS / "fcdd-resnet18.pt", _read(write_area(tmp_path, 1, 1, 256, seed=3)[0]))


@pytest.mark.parametrize("model", ["fcdd-resnet18.pt", "patchcore-vgg16.pt", "fcdd-vgg16.pt"])
def test_bf16_heatmaps_and_findings_match_fp32_on_real_imagery(model: str, shared_data: Path) -> None:
    path = MODELS / model
    if not path.is_file():  # patchcore-vgg16.pt is not committed (yet): a fresh checkout has no such file
        pytest.skip(f"model not in this checkout: {path}")
    _bf16_matches_fp32(path, _read(shared_data / CHIP)[:512, :512])
