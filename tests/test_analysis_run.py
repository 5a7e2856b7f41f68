"""AnalysisRun, the one analysis lifecycle: start records every option, run saves each result and finishes the
analysis, an interrupted run resumes with the recorded options. Synthetic images and an untrained small model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.analysis.run import AnalysisInput, AnalysisOptions, AnalysisRun
from core.detection.detector import Detector
from core.errors import InputError
from core.models import build_model
from core.store import Workspace

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def det() -> Detector:
    torch.manual_seed(0)
    return Detector.from_model(build_model("fcdd-resnet18"), device="cpu")


def _images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        p = folder / f"img{k}.png"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_start_records_every_option_and_run_saves_each_result(ws: Workspace, det: Detector, tmp_path: Path) -> None:
    good = _images(tmp_path / "in", 2)
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    inputs = [AnalysisInput(str(good[0]), origin="upload"), AnalysisInput(str(broken)), AnalysisInput(str(good[1]))]
    options = AnalysisOptions(threshold=1.5, change_threshold=2.5, grade_scale="xview2-jds", resample=False,
                              origin="test")
    run = AnalysisRun.start(det, inputs, options, ws=ws, case_id=ws.create_case("c"))
    a = ws.get_analysis(run.analysis_id)
    assert a["status"] == "running" and a["threshold"] == 1.5
    assert a["options"] == {"change_threshold": 2.5, "grade_scale": "xview2-jds", "resample": False, "device": "CPU",
                            "out": "", "origin": "test", "event_type": "other", "footprints": [], "engine": "local",
                            "ray_address": "", "workers": 0, "gpus_per_worker": 0.0, "ray_split": "windows",
                            "area": True}
    assert [i["name"] for i in ws.analysis_inputs(run.analysis_id)] == ["img0.png", "broken.jpg", "img1.png"]
    seen: list[str] = []
    results = run.run(on_input=lambda k, n, item: seen.append(f"{k + 1}/{n} {item.name}"))
    assert seen == ["1/3 img0.png", "2/3 broken.jpg", "3/3 img1.png"]
    assert [r.error is None for r in results] == [True, False, True]
    a = ws.get_analysis(run.analysis_id)
    assert a["status"] == "done" and a["n_done"] == 2 and a["n_failed"] == 1
    assert AnalysisOptions.from_record(a["threshold"], a["options"]) == AnalysisOptions(
        threshold=1.5, change_threshold=2.5, grade_scale="xview2-jds", resample=False, device="CPU", origin="test")


def test_an_interrupted_run_resumes_what_is_left_with_the_recorded_options(ws: Workspace, det: Detector,
                                                                           tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", 3)
    run = AnalysisRun.start(det, [AnalysisInput(str(p)) for p in paths], AnalysisOptions(threshold=0.8),
                            ws=ws, case_id=ws.create_case("c"))

    def stop_after_first(item: AnalysisInput, result: object) -> None:
        raise KeyboardInterrupt  # the page left / Ctrl-C, right after the first result was saved

    with pytest.raises(KeyboardInterrupt):
        run.run(on_result=stop_after_first)
    a = ws.get_analysis(run.analysis_id)
    assert a["status"] == "interrupted" and a["n_done"] == 1
    again = AnalysisRun.resume(ws, run.analysis_id, det)
    assert [i.name for i in again.inputs] == ["img1.png", "img2.png"] and again.options.threshold == 0.8
    assert all(f.threshold == 0.8 for r in again.run() for f in r.findings)
    a = ws.get_analysis(run.analysis_id)
    assert a["status"] == "done" and a["n_done"] == 3


def test_without_a_workspace_only_files_are_written(det: Detector, tmp_path: Path) -> None:
    (path,) = _images(tmp_path / "in", 1)
    with pytest.raises(InputError, match="output folder"):
        AnalysisRun.start(det, [AnalysisInput(str(path))], AnalysisOptions())
    with pytest.raises(InputError, match="at least one input"):
        AnalysisRun.start(det, [], AnalysisOptions(), out_dir=tmp_path / "out")
    for bad, words in ((AnalysisOptions(grade_scale="xview2"), "unknown grading scale"),
                       (AnalysisOptions(change_threshold=-1.0), "positive number")):
        with pytest.raises(InputError, match=words):  # refused before any input runs
            AnalysisRun.start(det, [AnalysisInput(str(path))], bad, out_dir=tmp_path / "out")
    run = AnalysisRun.start(det, [AnalysisInput(str(path))], AnalysisOptions(), out_dir=tmp_path / "out")
    (res,) = run.run()
    assert run.analysis_id is None and res.error is None and res.heatmap_path is not None
    assert Path(res.heatmap_path).parent == tmp_path / "out"


def test_options_from_an_older_record_keep_their_defaults() -> None:
    old = AnalysisOptions.from_record(None, {"grade_scale": "unosat", "tile": 224})  # before change_threshold
    assert old == AnalysisOptions(grade_scale="unosat")
    assert AnalysisInput("/data/x/tile.tif").name == "tile.tif"
    assert AnalysisInput.from_record(AnalysisInput("/a/b.tif", pre_path="/a/p.tif").record()).pre_path == "/a/p.tif"
