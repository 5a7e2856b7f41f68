"""Feature matching (PatchCore): kNN and coreset on small data, the bank in checkpoints, a real fit on images."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.detection.detector import Detector
from core.errors import CheckpointError, ModelError
from core.learn.training import TrainConfig, train
from core.models import build_model
from core.models.checkpoint import load_model, read_checkpoint, save_checkpoint
from core.models.coreset import greedy_coreset
from core.models.patchcore import PatchCoreNet, nearest_distance

torch.set_num_threads(1)


def test_nearest_distance_matches_brute_force_in_chunks() -> None:
    g = torch.Generator().manual_seed(0)
    q, bank = torch.randn(37, 5, generator=g), torch.randn(11, 5, generator=g)
    ref = torch.cdist(q, bank).min(1).values
    torch.testing.assert_close(nearest_distance(q, bank, chunk=4), ref, rtol=1e-4, atol=1e-4)
    assert float(nearest_distance(bank[:3], bank).abs().max()) < 1e-3  # a bank entry is at distance 0
    with pytest.raises(ModelError, match="bank is empty"):
        nearest_distance(q, torch.zeros(0, 5))


def test_k_nearest_mean_by_hand_and_against_brute_force() -> None:
    bank = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [10.0, 0.0]])
    q = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    # by hand: (0, 3, 4) -> mean 7/3; from (3, 4): (3, 4, 5) -> 4
    torch.testing.assert_close(nearest_distance(q, bank, k=3), torch.tensor([7 / 3, 4.0]))
    torch.testing.assert_close(nearest_distance(q, bank, k=1), torch.tensor([0.0, 3.0]))
    torch.testing.assert_close(nearest_distance(q, bank, k=99), torch.cdist(q, bank).mean(1))  # k capped at M
    g = torch.Generator().manual_seed(2)
    q, bank = torch.randn(41, 6, generator=g), torch.randn(23, 6, generator=g)
    ref = torch.cdist(q, bank).topk(5, 1, largest=False).values.mean(1)
    torch.testing.assert_close(nearest_distance(q, bank, chunk=8, k=5), ref, rtol=1e-4, atol=1e-4)


def test_neighbours_travel_with_the_checkpoint_and_old_files_load_with_the_nearest_alone(tmp_path: Path) -> None:
    from core.models.patchcore import NEIGHBOURS

    net = build_model("patchcore-resnet18", neighbours=5)
    net.set_bank(torch.randn(17, net.dim))
    assert build_model("patchcore-resnet18").neighbours == NEIGHBOURS
    other = build_model("patchcore-resnet18")
    other.load_state_dict(net.state_dict())
    assert int(other.neighbours) == 5
    old = {k: v for k, v in net.state_dict().items() if k != "neighbours"}  # written before k was stored
    other.load_state_dict(old)
    assert int(other.neighbours) == 1
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        e = other.embed(x)
        ref = torch.cdist(e.permute(0, 2, 3, 1).reshape(-1, net.dim), other.bank).min(1).values
        torch.testing.assert_close(other(x).flatten(), ref, rtol=1e-3, atol=1e-3)
    for bad in (torch.tensor(0), torch.tensor(2.5), torch.tensor([3, 4])):
        with pytest.raises(ModelError, match="neighbours"):
            other.load_state_dict(dict(old, neighbours=bad))
    for bad_k in (0, 1000, 2.5, True):
        with pytest.raises(ModelError, match="--neighbours"):
            build_model("patchcore-resnet18", neighbours=bad_k)


def test_stages_travel_with_the_checkpoint_and_old_files_load_with_the_last_two() -> None:
    from core.models.patchcore import STAGES

    net = build_model("patchcore-vgg16")
    assert int(net.stages) == STAGES == 3 and net.dim == 128 + 256 + 512
    net.set_bank(torch.randn(5, net.dim))
    other = build_model("patchcore-vgg16")
    other.load_state_dict(net.state_dict())
    assert int(other.stages) == 3 and other.bank.shape == (5, 896)
    legacy = build_model("patchcore-vgg16", stages=2)
    legacy.set_bank(torch.randn(4, legacy.dim))
    old = {k: v for k, v in legacy.state_dict().items() if k not in ("stages", "neighbours")}
    loaded = build_model("patchcore-vgg16")  # a fresh net of today's default layout reads the old file
    loaded.load_state_dict(old)
    assert (int(loaded.stages), int(loaded.neighbours), loaded.dim) == (2, 1, 768)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        legacy.neighbours.fill_(1)
        torch.testing.assert_close(loaded(x), legacy(x), rtol=1e-3, atol=1e-3)  # the writer's map (bank in half)
    for bad in (torch.tensor(1), torch.tensor(5)):  # VGG16 has 4 stages; at least 2 are embedded
        with pytest.raises(ModelError, match="stages"):
            build_model("patchcore-vgg16").load_state_dict(dict(old, stages=bad))
    with pytest.raises(ModelError, match="--stages"):
        build_model("patchcore-vgg16", stages=1)


def test_greedy_coreset_is_k_center_and_covers_every_cluster() -> None:
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    sizes = [500, 300, 150, 3]  # one rare pattern of 3 points
    pts = torch.cat([c + 0.1 * torch.randn(n, 2, generator=g) for c, n in zip(centres, sizes, strict=True)])
    idx = greedy_coreset(pts, 4, proj_dim=2)
    assert len(set(idx.tolist())) == 4
    hit = {int(torch.cdist(pts[i:i + 1], centres).argmin()) for i in idx.tolist()}
    assert hit == {0, 1, 2, 3}  # random sampling would almost never keep the rare cluster
    # each pick after the first is the point farthest from those already picked
    chosen = pts[idx]
    for k in range(1, 4):
        far = torch.cdist(pts, chosen[:k]).min(1).values
        assert float(far[idx[k]]) == pytest.approx(float(far.max()), rel=1e-5)
    assert greedy_coreset(pts, 10_000).tolist() == list(range(len(pts)))


def test_bank_of_any_size_loads_and_a_wrong_width_is_refused() -> None:
    net = build_model("patchcore-resnet18")
    net.set_bank(torch.randn(17, net.dim))
    other = build_model("patchcore-resnet18")
    other.load_state_dict(net.state_dict())
    assert other.bank.shape == (17, net.dim)
    bad = dict(net.state_dict(), bank=torch.randn(3, net.dim + 1))
    with pytest.raises(ModelError, match="feature bank"):
        other.load_state_dict(bad)


def _texture(seed: int, size: int = 192) -> np.ndarray:
    """Smooth, repetitive 'normal' texture: blurred noise on a brick-like grid."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.normal(128, 40, (size, size, 3)).astype(np.float32), (0, 0), 3)
    yy, xx = np.mgrid[:size, :size]
    grid = ((yy // 16 + xx // 24) % 2)[..., None] * 30.0
    return np.clip(base + grid, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_fit_on_images_finds_an_unseen_pattern(tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"normal{i}.png"
        cv2.imwrite(str(p), _texture(i))
        paths.append(str(p))
    out = tmp_path / "area.pt"
    meta = train(TrainConfig(arch="patchcore-vgg16", normal=paths, out=str(out), input_size=64, name="area"))
    assert meta["trunk_source"]["name"] == "hed-vgg16" and meta["training"]["feature_bank"]["bank"] > 0
    state, _ = read_checkpoint(out)
    assert not any(k.startswith("backbone.") for k in state)  # the trunk comes from the installed source
    assert out.stat().st_size < 2_000_000
    det = Detector.load(out)
    assert isinstance(det.net, PatchCoreNet) and det.net.bank.shape[0] == meta["training"]["feature_bank"]["bank"]
    img = _texture(7)
    img[80:120, 80:120] = (250, 30, 200)  # a magenta square never seen in the normal imagery
    maps, scores = det.predict(img[None])
    heat = det.calibration.pixel(maps[0])
    assert heat[90:110, 90:110].mean() > 3 * max(np.median(heat), 0.3)
    normal_maps, normal_scores = det.predict(_texture(8)[None])
    assert scores[0] > normal_scores[0]


def test_checkpoint_naming_an_unknown_or_other_trunk_source_is_refused(tmp_path: Path) -> None:
    net = build_model("patchcore-resnet18")
    net.set_bank(torch.randn(4, net.dim))
    for info, msg in (({"name": "evil", "sha256": "0"}, "does not know"),
                      ({"name": "hed-vgg16", "sha256": "0" * 64}, "another version")):
        p = tmp_path / "x.pt"
        save_checkpoint(p, {"bank": net.bank, "stages": net.stages}, {"arch": "patchcore-resnet18",
                                                                      "trunk_source": info})
        with pytest.raises(CheckpointError, match=msg):
            load_model(p)
    save_checkpoint(p, {"bank": net.bank, "stages": net.stages}, {"arch": "patchcore-resnet18"})  # no trunk source
    with pytest.raises(CheckpointError, match="missing keys"):
        load_model(p)


def test_the_held_out_strip_lies_in_the_valid_rows_of_a_scene_with_nodata_below(tmp_path: Path) -> None:
    """A reprojected tile or tilted mosaic often has black nodata under its content: the calibration strip is the
    last 15 % of the rows that hold pixels, not of the raster (which would be all nodata and refuse the fit)."""
    import rasterio
    from rasterio.transform import from_origin

    from core.learn.samples import PatchPool

    img = _texture(3)
    h, w = 400, img.shape[1]
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:260] = cv2.resize(img, (w, 260))  # rows 260-399: exact-black nodata
    path = tmp_path / "tile.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32615",
                       transform=from_origin(500000, 4100000, 0.5, 0.5)) as ds:
        ds.write(np.moveaxis(rgb, -1, 0))
    train_pool, held = PatchPool([path], 32, part="train"), PatchPool([path], 32, part="holdout")
    assert held.items[0].rows == (221, 260) and train_pool.items[0].rows == (0, 221)
    patches = held.grid(8)
    assert len(patches) > 0 and all(p.max() > 0 for p in patches)


@pytest.mark.slow  # fits a model (keeps the fast lane under a minute)
def test_photos_are_banked_at_the_scale_they_are_scored_and_analysed(tmp_path: Path, monkeypatch) -> None:
    """A photo (no georeferencing) is banked with its short side at the input size, whether the pool cached it or
    it is too large to cache; a model that learnt from photos only analyses photos at that scale too. (Before, the
    bank held the photos at twice the scored scale, or at native resolution when not cached.)"""
    from core.detection.scene_grid import resample_factor
    from core.imagery.reader import open_scene
    from core.learn import area_fit, samples

    small, large = tmp_path / "small.png", tmp_path / "large.png"
    cv2.imwrite(str(small), _texture(1, 300)[:, :240])
    cv2.imwrite(str(large), _texture(2, 400))
    monkeypatch.setattr(samples, "CACHE_MAX_PIXELS", 300 * 240)  # the large photo is read, not cached
    pool = samples.PatchPool([small, large], 64)
    assert pool.items[0].cached is not None and pool.items[1].cached is None
    shapes = [rgb.shape[:2] for rgb, _valid in area_fit._windows(pool)]
    assert shapes == [(80, 64), (64, 64)]

    out = tmp_path / "photos.pt"
    meta = train(TrainConfig(arch="patchcore-vgg16", normal=[str(small), str(large)], out=str(out), input_size=64,
                             name="photos"))
    assert meta["training"]["normal"]["frames"] == meta["training"]["normal"]["used"] == 2
    det = Detector.load(out)
    assert det.frame_side == 64
    scene = open_scene(large)
    try:
        assert resample_factor(scene, det.gsd_m, frame_side=det.frame_side)[0] == pytest.approx(64 / 400)
        assert resample_factor(scene, det.gsd_m, enabled=False, frame_side=det.frame_side)[0] == 1.0
    finally:
        scene.close()
    assert Detector.load(None).frame_side is None  # the bundled default learnt from georeferenced tiles
