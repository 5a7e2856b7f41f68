"""Pre/post comparison in the app (AppTest, in-process), with a real Joplin pair and the bundled default model:
pre-event uploads are references, the pairing is shown and can be changed, a paired post image goes through
``analyze_pair``, the result shows a before/after view, the change heatmap and the co-registration shift, and the
map gets the change heatmap as a layer of its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.assets import FAST_MODEL as DEFAULT_MODEL  # the workflow, not the detector
from core.change.coreg import coregister
from core.imagery.reader import open_scene
from core.mapping import webmap
from core.server_files.paths import ENV_SERVER_PATHS
from core.store import Workspace
from tests.support.app import JOPLIN, new_app, server_like_reruns, texts
from tests.support.data import need
from ui import compare, model_cache
from ui import state as S

torch.set_num_threads(1)

CHIPS = JOPLIN / "chips_aligned"
POST, PRE, OTHER = "0_post.tif", "0_pre.tif", "1_post.tif"


def bundled_model() -> Path:
    """The bundled default checkpoint, or skip with the reason."""
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"bundled default model missing: {DEFAULT_MODEL}")
    return DEFAULT_MODEL


def upload(at, index: int, name: str, path: Path) -> None:
    at.file_uploader[index].set_value([(name, path.read_bytes(), "image/tiff")]).run()
    assert not at.exception, texts(at.exception)


def pair_table(at) -> list[dict]:
    table = next(d.value for d in at.dataframe if "pre-event image" in d.value.columns)
    return table.to_dict("records")


def pair_box(at, post: str):
    return next(s for s in at.selectbox if s.label == f"Pre-event image for {post}")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    bundled_model()
    root = tmp_path_factory.mktemp("compare") / "workspace"
    with pytest.MonkeyPatch.context() as mp:
        server_like_reruns(mp)
        mp.setenv("BDA_WORKSPACE", str(root))
        mp.setenv(model_cache.ENV_MODEL, str(DEFAULT_MODEL))  # the fast bundled model: this tests the workflow
        mp.delenv(ENV_SERVER_PATHS, raising=False)
        yield root


@pytest.fixture(scope="module")
def staged(env: Path, shared_data: Path):
    """A session that uploaded one pre-event and two post-event Joplin chips (0_post overlaps 0_pre, 1_post does
    not); nothing analysed yet."""
    chips = need(shared_data / CHIPS)
    at = new_app().run()
    assert not at.exception, texts(at.exception)
    upload(at, 1, PRE, need(chips / "pre" / PRE))  # the second uploader: pre-event images
    upload(at, 0, POST, need(chips / "post" / POST))
    upload(at, 0, OTHER, need(chips / "post" / OTHER))
    return at


def test_pre_uploads_are_references_and_pair_by_overlap(staged) -> None:
    at = staged
    assert [s["name"] for s in at.session_state[S.STAGED]] == [POST, OTHER]
    assert [p["name"] for p in at.session_state[S.STAGED_PRE]] == [PRE]
    rows = {r["post-event image"]: r for r in pair_table(at)}
    assert rows[POST]["pre-event image"] == PRE and rows[POST]["rule"] == "overlap"
    assert rows[POST]["overlap"] > 99.0  # the aligned chips cover the same ground
    assert rows[OTHER]["pre-event image"] == "— none —" and rows[OTHER]["rule"] == ""
    assert "no pre-event image covers" in rows[OTHER]["note"]
    assert "Analyse 2 images" in [b.label for b in at.button]  # the pre image is not an input of its own


def test_the_analyst_can_change_a_pairing(staged) -> None:
    at = staged
    pair_box(at, OTHER).set_value(PRE).run()
    rows = {r["post-event image"]: r for r in pair_table(at)}
    assert rows[OTHER]["pre-event image"] == PRE and rows[OTHER]["rule"] == "manual"
    assert rows[OTHER]["overlap"] < 1.0  # the table still tells the analyst they barely overlap
    pair_box(at, POST).set_value("").run()
    rows = {r["post-event image"]: r for r in pair_table(at)}
    assert rows[POST]["pre-event image"] == "— none —"
    assert at.session_state[S.PAIRS] == {OTHER: PRE, POST: ""}
    # back to the automatic pairing for both
    pair_box(at, OTHER).set_value("").run()
    pair_box(at, POST).set_value(PRE).run()
    rows = {r["post-event image"]: r for r in pair_table(at)}
    assert (rows[POST]["pre-event image"], rows[POST]["rule"]) == (PRE, "overlap")
    assert rows[OTHER]["pre-event image"] == "— none —"
    assert not at.exception, texts(at.exception)


@pytest.fixture(scope="module")
def analysed(staged, env: Path):
    at = staged
    at.button(key="run_analysis").click().run()
    assert not at.exception, texts(at.exception)
    ws = Workspace(env)
    return at, ws, ws.list_analyses()[0]["id"]


def test_a_paired_post_goes_through_analyze_pair(analysed, shared_data: Path) -> None:
    at, ws, aid = analysed
    inputs = {i["name"]: i for i in ws.analysis_inputs(aid)}
    assert set(inputs) == {POST, OTHER}  # the pre image is no input of its own
    assert Path(inputs[POST]["pre_path"]).name == PRE and inputs[OTHER]["pre_path"] is None
    res = {r.scene_name: r for r in ws.scene_results(aid)}
    pair, alone = res[POST], res[OTHER]
    assert pair.error is None and alone.error is None
    assert pair.pre_scene_name == PRE and pair.change_path is not None and pair.change_path.is_file()
    assert alone.change_path is None and alone.pre_scene_name is None
    assert pair.meta["coregistration"]["method"] == "georef"
    assert at.session_state[S.STAGED] == [] and at.session_state[S.STAGED_PRE] == []
    summary = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    assert list(summary["pre-event"]) == [PRE, ""]


def test_before_after_view_change_heatmap_and_shift(analysed) -> None:
    at, ws, aid = analysed
    pair = next(r for r in ws.scene_results(aid) if r.scene_name == POST)
    assert at.session_state[S.SHOWN_SCENE] == POST
    captions = [c for img in at.image for c in img.captions]
    assert f"before/after (wipe): {PRE} | {POST}" in captions
    thr = webmap.change_threshold(pair)
    assert f"change heatmap: grey below {thr:.2f}, colour above" in captions
    coreg = pair.meta["coregistration"]
    shift = next(c.value for c in at.caption if "Co-registration" in c.value)
    dx, dy = coreg["shift_px"]
    assert f"dx {dx:+.2f} px, dy {dy:+.2f} px" in shift and f"({coreg['shift_m'][0]:+.2f} m," in shift
    assert ("applied" if coreg["shift_applied"] else "not applied") in shift
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Change findings saved"]) == len(pair.findings)
    # the slider drives the view; blend mode too
    at.slider(key=S.W_COMPARE_POS).set_value(20).run()
    at.segmented_control(key=S.W_COMPARE_MODE).set_value("blend").run()
    assert not at.exception, texts(at.exception)
    assert f"before/after (blend): {PRE} | {POST}" in [c for img in at.image for c in img.captions]
    assert at.session_state[S.COMPARE_MODE] == "blend"
    # the single image shows no before/after view
    at.selectbox(key=S.W_SHOWN_SCENE).set_value(OTHER).run()
    assert not any(c.startswith("before/after") for img in at.image for c in img.captions)
    assert not any("Co-registration" in c.value for c in at.caption)


def test_the_pre_preview_is_the_coregistered_pre_image(analysed) -> None:
    _, ws, aid = analysed
    pair = next(r for r in ws.scene_results(aid) if r.scene_name == POST)
    coreg = pair.meta["coregistration"]
    shift = tuple(coreg["shift_px"]) if coreg["shift_applied"] else (0.0, 0.0)
    pre_path = pair.meta["pre_source"]
    shown = compare.pre_on_post(str(pair.source_path), pre_path, 0.0, 0.0, shift)
    post, pre = open_scene(pair.source_path), open_scene(pre_path)
    try:
        full, valid, _ = coregister(post, pre, residual="apply" if coreg["shift_applied"] else "off")
    finally:
        post.close()
        pre.close()
    assert shown.shape == full.shape  # a 1024 px chip is shown at full size
    diff = np.abs(shown.astype(int) - full.astype(int))[valid]
    assert diff.mean() < 1.0
    other = open_scene(Path(pair.source_path)).read(_window(full))[0]
    assert np.abs(shown.astype(int) - other.astype(int)).mean() > 5  # it is the pre image, not the post again


def _window(a: np.ndarray):
    from rasterio.windows import Window

    return Window(0, 0, a.shape[1], a.shape[0])


def test_compose_wipe_and_blend() -> None:
    pre = np.zeros((10, 20, 3), np.uint8)
    post = np.full((10, 20, 3), 200, np.uint8)
    w = compare.compose(pre, post, 50, "wipe")
    assert (w[:, :9] == 0).all() and (w[:, 11:] == 200).all()
    assert (w[:, 9:11] == compare.SPLIT_COLOUR).all()
    assert (compare.compose(pre, post, 100, "blend") == 200).all()
    assert (compare.compose(pre, post, 0, "blend") == 0).all()
    assert (compare.compose(pre, post, 25, "blend") == 50).all()
    with pytest.raises(ValueError):
        compare.compose(pre[:5], post, 50, "wipe")


def test_the_map_has_the_change_heatmap_as_its_own_layer(analysed) -> None:
    at, ws, aid = analysed
    at.switch_page("pages/map.py").run()
    assert not at.exception, texts(at.exception)
    comps = [c for c in at.get("component_instance") if c.proto.component_name.endswith("st_folium")]
    args = json.loads(comps[0].proto.json_args)
    script = args["script"] + args["header"] + args["html"]
    # two post images (as imagery and as anomaly heatmaps) + one change heatmap + the area mosaic of the two scenes
    assert script.count("L.imageOverlay") == 6
    assert "Heatmaps (post-event anomaly)" in script and "Change heatmaps (pre \\u2192 post)" in script
    assert all(u.startswith("data:") for u in args["js_links"] + args["css_links"])  # offline
    assert any("pre/post pair" in c.value for c in at.caption)
    results = ws.scene_results(aid)
    html = webmap.map_html(webmap.build_map(results))
    assert html == webmap.map_html(webmap.build_map(results))  # deterministic: no remount on rerun
    alone = [r for r in results if r.change_path is None]
    assert "Change heatmaps" not in webmap.map_html(webmap.build_map(alone))  # no empty layer for single images


def test_a_server_path_can_be_a_pre_event_image(env: Path, shared_data: Path) -> None:
    pre = need(shared_data / CHIPS / "pre" / PRE)
    at = new_app().run()
    at.text_input(key=S.W_SERVER_PATH).set_value(str(pre))
    at.selectbox(key=S.W_SERVER_ROLE).set_value("pre-event")
    next(b for b in at.button if b.label == "Add path").click().run()
    assert not at.exception, texts(at.exception)
    assert [p["path"] for p in at.session_state[S.STAGED_PRE]] == [str(pre)]
    assert at.session_state[S.STAGED] == []
    assert any("Add the post-event images" in i.value for i in at.info)


def test_a_pre_image_in_another_crs_pairs_by_overlap_and_is_reprojected(env: Path, shared_data: Path,
                                                                       tmp_path: Path) -> None:
    """The pre chip warped to WGS84 lat/lon (and renamed, so names cannot pair it) pairs with the UTM post chip by
    footprint overlap, and the before/after preview puts it back on the post grid."""
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    post = need(shared_data / CHIPS / "post" / POST)
    pre = need(shared_data / CHIPS / "pre" / PRE)
    moved = tmp_path / "site_before_wgs84.tif"
    with rasterio.open(pre) as src:
        tr, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        prof = src.profile | {"crs": "EPSG:4326", "transform": tr, "width": w, "height": h, "nodata": 0}
        with rasterio.open(moved, "w", **prof) as dst:
            for b in range(1, src.count + 1):
                reproject(rasterio.band(src, b), rasterio.band(dst, b), resampling=Resampling.bilinear)
    at = new_app().run()
    for path, role in ((moved, "pre-event"), (post, "post-event")):
        at.text_input(key=S.W_SERVER_PATH).set_value(str(path))
        at.selectbox(key=S.W_SERVER_ROLE).set_value(role)
        next(b for b in at.button if b.label == "Add path").click().run()
        assert not at.exception, texts(at.exception)
    (row,) = pair_table(at)
    assert (row["pre-event image"], row["rule"]) == (moved.name, "overlap") and row["overlap"] > 95.0
    (item,) = compare.with_pre_paths(at.session_state[S.STAGED], at.session_state[S.STAGED_PRE])
    assert item["pre_path"] == str(moved)
    warped_back = compare.pre_on_post(str(post), str(moved), 0.0, 1.0, (0.0, 0.0), 256)
    direct = compare.pre_on_post(str(post), str(pre), 0.0, 1.0, (0.0, 0.0), 256)
    inner = (slice(8, -8), slice(8, -8))  # away from the edges the two resamplings treat differently
    assert np.abs(warped_back[inner].astype(int) - direct[inner].astype(int)).mean() < 8.0


def test_the_analyst_recuts_the_change_findings_and_reviews_survive(analysed) -> None:
    at, ws, aid = analysed
    at.switch_page("pages/analyze.py").run()
    at.selectbox(key=S.W_SHOWN_SCENE).set_value(POST).run()
    pair = next(r for r in ws.scene_results(aid) if r.scene_name == POST)
    before = webmap.change_threshold(pair)
    assert pair.findings, "the pair needs change findings"
    kept = max(pair.findings, key=lambda f: f.score_max)  # the strongest change survives a higher threshold
    ws.review_finding(kept.id, analyst="kim", status="confirmed", notes="collapsed roof")
    higher = round(min(before * 1.5, kept.score_max - 0.05), 2)
    assert higher > before + 0.01
    box = next(n for n in at.number_input if n.label == "Change threshold")
    assert abs(box.value - round(before, 2)) < 1e-6
    box.set_value(higher)
    next(b for b in at.button if b.label == "Save change findings at this threshold").click().run()
    assert not at.exception, texts(at.exception)
    after = next(r for r in ws.scene_results(aid) if r.scene_name == POST)
    assert abs(webmap.change_threshold(after) - higher) < 1e-6
    assert after.findings and sum(f.area_px for f in after.findings) < sum(f.area_px for f in pair.findings)
    fresh = [f for f in after.findings if f.review_status == "unreviewed"]  # a reviewed one may be kept as it was
    assert fresh and all(f.threshold == higher and f.score_max >= higher and f.pre_source_name == PRE for f in fresh)
    survivor = ws.get_finding(kept.id)
    assert (survivor.review_status, survivor.notes) == ("confirmed", "collapsed roof")
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Change findings saved"]) == len(after.findings)
