"""Four browser sessions analyse four different real AIDER photos at once on one streamlit server (the load test of
``python -m benchmarks.load_sessions``, smaller; harness in tests/support/load_sessions.py): every session gets its
own result, nothing is mixed up between sessions, nothing leaves the machine. The checker is then fed deliberately
wrong expectations to prove it catches them."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest

from core.store import Workspace
from tests.support.browser import REPO, need_chromium
from tests.support.data import need
from tests.support.load_sessions import (
    MAX_SIDE,
    MIN_SIDE,
    Deadline,
    DeadlineExceeded,
    LoadRun,
    make_plans,
    pick_images,
    run_load,
    verify,
)

SESSIONS = 4
DEADLINE_S = 240.0


@pytest.fixture(scope="module")
def load_run(shared_data, tmp_path_factory, request) -> LoadRun:
    need_chromium()
    need(shared_data / "aider" / "fire")
    need(shared_data / "aider" / "flooded_areas")
    # the fast bundled model (FCDD ResNet-18), not the app's default (PatchCore VGG16, many times slower per image):
    # the test checks that sessions keep to their own case, image and result, not the detector
    model = REPO / "assets/models/fcdd-resnet18.pt"
    if not model.is_file():
        import torch

        torch.set_num_threads(1)
        model = request.getfixturevalue("tiny_model")
    workdir = tmp_path_factory.mktemp("load")
    return run_load(SESSIONS, DEADLINE_S, shared_data, workdir, threads=1, model=model, shots=workdir / "shots")


def _explain(run: LoadRun) -> str:
    return f"{run.report}\nscreenshots: {run.ws_root.parent / 'shots'}"


@pytest.mark.browser
@pytest.mark.slow
def test_sessions_analyse_at_once_without_mixups(load_run):
    rep = load_run.report
    assert rep["error"] is None, _explain(load_run)
    assert rep["problems"] == [] and rep["ok"], _explain(load_run)
    assert rep["mixed_up"] == [] and rep["failed"] == []
    assert rep["blocked_requests"] == [], "the app reached outside the machine"
    assert all(t is not None and t > 0 for t in rep["per_session_s"]), rep["per_session_s"]
    assert len(set(rep["images"])) == SESSIONS
    ws = Workspace(load_run.ws_root)
    assert len(ws.list_analyses()) == SESSIONS
    scores = {s.index: s.score_shown for s in load_run.seen}
    for p in load_run.plans:  # each page shows its own image's recorded score (verify did this; shown plainly here)
        (case,) = [c for c in ws.list_cases() if c["name"] == p.case_name]
        (analysis,) = ws.list_analyses(case["id"])
        (result,) = ws.scene_results(analysis["id"])
        assert result.scene_name == p.upload_name
        assert scores[p.index] == f"{result.image_score:.2f}"
    assert rep["server_peak_rss_mib"] is None or rep["server_peak_rss_mib"] > 0


@pytest.mark.browser
@pytest.mark.slow
def test_checker_catches_swapped_images(load_run):
    plans = list(load_run.plans)
    plans[0], plans[1] = (dataclasses.replace(plans[0], image=plans[1].image),
                          dataclasses.replace(plans[1], image=plans[0].image))
    verdict = verify(plans, load_run.seen, Workspace(load_run.ws_root))
    assert {0, 1} <= set(verdict.mixed), verdict.problems


@pytest.mark.browser
@pytest.mark.slow
def test_checker_catches_wrong_score_foreign_name_and_missing_result(load_run):
    seen = copy.deepcopy(load_run.seen)
    plans = load_run.plans
    seen[2].score_shown = "-1.23"  # a score no session recorded
    seen[3].text += f"\n{plans[0].upload_name}"  # session 0's image named on session 3's page
    seen[1].failure, seen[1].t_result = "TimeoutError: never drawn", None
    seen[0].analyst_shown = plans[2].analyst  # another session's analyst in the sidebar
    verdict = verify(plans, seen, Workspace(load_run.ws_root))
    assert {0, 2, 3} <= set(verdict.mixed), verdict.problems
    assert 1 in verdict.failed, verdict.problems
    assert verify(plans, load_run.seen, Workspace(load_run.ws_root)).problems == []  # the real run stays clean


def test_images_are_distinct_single_tile_photos(shared_data):
    from PIL import Image

    need(shared_data / "aider" / "fire")
    images = pick_images(shared_data, 8)
    assert len({p.name for p in images}) == 8
    assert {p.parent.name for p in images} == {"fire", "flooded_areas"}
    for p in images:
        with Image.open(p) as im:
            assert MIN_SIDE <= min(im.size) and max(im.size) <= MAX_SIDE
    plans = make_plans(images)
    names = [q.case_name for q in plans] + [q.upload_name for q in plans]
    assert not any(a in b for a in names for b in names if a != b), "one name inside another hides a mix-up"


def test_deadline_bounds_every_wait():
    dl = Deadline(30.0)
    assert 0 < dl.ms(5) <= 5000
    assert dl.ms(1e6) <= 30_000
    with pytest.raises(DeadlineExceeded):
        Deadline(-1.0).ms(5)


def test_sessions_are_capped(tmp_path):
    with pytest.raises(ValueError, match="between 1 and"):
        run_load(0, 10, Path("/nonexistent"), tmp_path)
