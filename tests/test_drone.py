"""Drone frames: EXIF / DJI XMP / GDAL-metadata GPS, camera table, approximate footprints, marker-only frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import ExifTags, Image
from pyproj import Geod

from core.geo import georef as geo
from core.i18n import say
from core.imagery.camera import lookup_camera, sensor_width_from_35mm
from core.imagery.reader import open_scene
from tests.support.data import need

GEOD = Geod(ellps="WGS84")
DJI_JPEG = "drone/deepforest_pypi/AWPE Pigeon Lake 2020 DJI_0005.JPG"


def _centre(scene) -> tuple[float, float]:  # noqa: ANN001
    lon, lat = geo.pixel_to_lonlat(scene.georef, scene.width / 2, scene.height / 2)
    return float(lon), float(lat)


def _top_azimuth(scene) -> float:  # noqa: ANN001
    """Azimuth (° from north) from the image centre to the middle of its top edge."""
    lon, lat = geo.pixel_to_lonlat(scene.georef, np.array([scene.width / 2] * 2), np.array([scene.height / 2, 0]))
    return GEOD.inv(lon[0], lat[0], lon[1], lat[1])[0] % 360


def test_dji_jpeg_exif_gps_footprint(shared_data: Path) -> None:
    scene = open_scene(need(shared_data / DJI_JPEG))
    gps = scene.meta["gps"]
    assert gps["source"] == "EXIF GPS"
    assert gps["lat"] == pytest.approx(45.03799, abs=1e-5) and gps["lon"] == pytest.approx(-94.34876, abs=1e-5)
    assert gps["alt_msl"] == pytest.approx(422.55, abs=0.01) and gps["agl"] == pytest.approx(61.1)
    assert scene.georef.method == "gps-footprint" and scene.georef.approximate
    lon, lat = _centre(scene)
    assert GEOD.inv(lon, lat, -94.34876, 45.03799)[2] < 1.0  # nadir (pitch -88°): centred on the GPS point
    expected_gsd = 13.2 * 61.1 / (8.8 * 1058)
    assert scene.gsd_m == pytest.approx(expected_gsd, rel=1e-6)
    assert geo.gsd_m(scene.georef, scene.width, scene.height) == pytest.approx(expected_gsd, rel=5e-3)
    assert _top_azimuth(scene) == pytest.approx(111.3, abs=0.1)  # gimbal yaw
    assert scene.meta["camera"]["model"] == "FC6310" and scene.meta["camera"]["sensor_width_mm"] == 13.2
    assert scene.capture_time == "2020-06-04T22:10:30"
    assert any("cropped" in w for w in map(say, scene.meta["warnings"]))  # 1058x997 is not the camera's 3:2


@pytest.mark.parametrize("name", ["100_0005_0018.tif", "100_0005_0136.tif", "100_0005_0140.tif",
                                  "100_0005_0142.tif"])
def test_dji_tiffs_with_xmp_gps_only(shared_data: Path, name: str) -> None:
    path = need(shared_data / "drone/orthority_odm_p4rtk" / name)
    scene = open_scene(path)
    assert scene.kind == "frame" and (scene.width, scene.height) == (1368, 912)
    gps = scene.meta["gps"]
    assert gps["source"] == "DJI XMP"
    with rasterio.open(path) as ds:  # the GDAL EXIF copy of the same position, read independently
        tags = ds.tags()
    dms = [float(v) for v in tags["EXIF_GPSLatitude"].replace("(", " ").replace(")", " ").split()]
    assert gps["lat"] == pytest.approx(dms[0] + dms[1] / 60 + dms[2] / 3600, abs=1e-6)
    assert gps["agl"] == pytest.approx(100.0, abs=0.2) and gps["gimbal_pitch"] == -60.0
    assert scene.georef is not None and scene.georef.method == "gps-footprint"
    # 30° oblique: centred where the optical axis meets the ground, ~58 m ahead along the gimbal yaw
    lon, lat = _centre(scene)
    az, _, dist = GEOD.inv(gps["lon"], gps["lat"], lon, lat)
    assert dist == pytest.approx(gps["agl"] * math.tan(math.radians(30)), rel=0.01)
    assert (az - gps["gimbal_yaw"] + 180) % 360 - 180 == pytest.approx(0, abs=0.5)
    w, s, e, n = geo.bounds_wgs84(scene.georef, scene.width, scene.height)
    assert w - 1e-4 <= gps["lon"] <= e + 1e-4 and s - 1e-4 <= gps["lat"] <= n + 1e-4  # the drone is at its edge
    assert any("tilted 30°" in m for m in map(say, scene.meta["warnings"]))
    assert scene.capture_time.startswith("2019-04-11T11:")


def test_pyodm_tiny_jpegs_keep_gps_as_marker_only(shared_data: Path) -> None:
    for name in ("image_1.jpg", "image_2.jpg"):
        scene = open_scene(need(shared_data / "drone/pyodm_tiny" / name))
        assert (scene.width, scene.height) == (48, 36)
        rgb, valid = scene.read()
        assert rgb.shape == (36, 48, 3) and valid.all() and rgb.std() > 5
        gps = scene.meta["gps"]
        assert gps["lat"] == pytest.approx(41.2264, abs=1e-3) and gps["lon"] == pytest.approx(-81.7055, abs=1e-3)
        assert gps["alt_msl"] == pytest.approx(438.5, abs=1.5) and gps["agl"] is None
        assert scene.georef is None and scene.gsd_m is None  # altitude is above sea level: no footprint
        assert any("height above ground" in w for w in map(say, scene.meta["warnings"]))


def test_dronetm_jpegs_without_exif_gps(shared_data: Path) -> None:
    for name in ("freetown-1-example.jpg", "agung-2-example.jpg"):
        scene = open_scene(need(shared_data / "drone/dronetm_cc_by" / name))
        assert (scene.width, scene.height) == (1000, 750) and scene.kind == "frame"
        assert scene.georef is None and "gps" not in scene.meta and scene.meta["warnings"] == []
        assert scene.read()[0].mean() > 20


def _frame(path: Path, *, model: str | None = "FC6310", focal: float | None = 8.8, focal35: int | None = None,
           xmp: dict[str, str] | None = None, orientation: int | None = None, size: tuple[int, int] = (600, 400),
           gps: tuple[float, float] | None = None) -> Path:
    exif = Image.Exif()
    if model:
        exif[271], exif[272] = "DJI", model
    if orientation:
        exif[274] = orientation
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if focal:
        sub[37386] = focal
    if focal35:
        sub[41989] = focal35
    if gps:
        exif.get_ifd(ExifTags.IFD.GPSInfo).update({1: "N" if gps[0] >= 0 else "S", 2: (abs(gps[0]), 0.0, 0.0),
                                                    3: "E" if gps[1] >= 0 else "W", 4: (abs(gps[1]), 0.0, 0.0)})
    attrs = " ".join(f'drone-dji:{k}="{v}"' for k, v in (xmp or {}).items())
    packet = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
              f'<rdf:Description xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" {attrs}/></rdf:RDF></x:xmpmeta>')
    img = np.random.default_rng(3).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(img).save(path, exif=exif, xmp=packet.encode())
    return path


NADIR = {"GpsLatitude": "37.0700", "GpsLongtitude": "-94.4950", "RelativeAltitude": "+100.0",
         "GimbalYawDegree": "+90.0", "GimbalPitchDegree": "-90.0"}


def test_synthetic_nadir_xmp_frame_footprint_size_and_heading(tmp_path: Path) -> None:
    scene = open_scene(_frame(tmp_path / "n.jpg", xmp=NADIR))
    gsd = 13.2 * 100 / (8.8 * 600)
    assert scene.gsd_m == pytest.approx(gsd)
    lon, lat = geo.pixel_to_lonlat(scene.georef, np.array([0, 600, 0]), np.array([0, 0, 400]))
    assert GEOD.inv(lon[0], lat[0], lon[1], lat[1])[2] == pytest.approx(150.0, rel=3e-3)  # GSD·W
    assert GEOD.inv(lon[0], lat[0], lon[2], lat[2])[2] == pytest.approx(100.0, rel=3e-3)  # GSD·H
    assert _top_azimuth(scene) == pytest.approx(90.0, abs=0.05)
    assert _centre(scene) == pytest.approx((-94.4950, 37.0700), abs=1e-7)
    assert not any("tilted" in w for w in map(say, scene.meta["warnings"]))


def test_exif_orientation_turns_the_footprint(tmp_path: Path) -> None:
    scene = open_scene(_frame(tmp_path / "o.jpg", xmp=NADIR, orientation=6))
    assert (scene.width, scene.height) == (400, 600)
    assert _top_azimuth(scene) == pytest.approx(0.0, abs=0.05) or _top_azimuth(scene) == pytest.approx(360, abs=0.05)
    assert scene.gsd_m == pytest.approx(13.2 * 100 / (8.8 * 600))


def test_unknown_camera_uses_35mm_equivalent(tmp_path: Path) -> None:
    scene = open_scene(_frame(tmp_path / "u.jpg", model="NoSuchCam 9", focal=8.8, focal35=24, xmp=NADIR))
    assert scene.meta["camera"]["sensor_source"] == "EXIF FocalLengthIn35mmFilm"
    sensor_w = math.hypot(36, 24) * 8.8 / 24 * 600 / math.hypot(600, 400)
    assert scene.gsd_m == pytest.approx(sensor_w * 100 / (8.8 * 600), rel=1e-9)


def test_unknown_camera_without_35mm_keeps_marker(tmp_path: Path) -> None:
    scene = open_scene(_frame(tmp_path / "x.jpg", model="NoSuchCam 9", focal=None, xmp=NADIR))
    assert scene.georef is None and scene.meta["gps"]["lat"] == pytest.approx(37.07)
    assert any("not in the camera table" in w for w in map(say, scene.meta["warnings"]))


def test_oblique_frame_gets_no_footprint(tmp_path: Path) -> None:
    scene = open_scene(_frame(tmp_path / "ob.jpg", xmp=NADIR | {"GimbalPitchDegree": "-20.0"}))
    assert scene.georef is None and "gps" in scene.meta
    assert any("oblique" in w for w in map(say, scene.meta["warnings"]))


def test_exif_gps_wins_and_null_island_is_rejected(tmp_path: Path) -> None:
    both = open_scene(_frame(tmp_path / "b.jpg", gps=(10.0, 20.0), xmp=NADIR))
    assert both.meta["gps"]["source"] == "EXIF GPS" and both.meta["gps"]["lat"] == pytest.approx(10.0)
    assert both.meta["gps"]["agl"] == 100.0  # height above ground still comes from XMP
    null = open_scene(_frame(tmp_path / "z.jpg", gps=(0.0, 0.0), xmp=NADIR))
    assert null.meta["gps"]["source"] == "DJI XMP"  # falls through to the next valid source
    assert any("no satellite fix" in w for w in map(say, null.meta["warnings"]))


def test_gdal_metadata_gps(tmp_path: Path) -> None:
    p = tmp_path / "g.tif"
    data = np.random.default_rng(4).integers(0, 256, (3, 300, 450), dtype=np.uint8)
    with rasterio.open(p, "w", driver="GTiff", width=450, height=300, count=3, dtype="uint8") as ds:
        ds.write(data)
        ds.update_tags(EXIF_GPSLatitude="(24) (40) (49.0009)", EXIF_GPSLatitudeRef="S",
                       EXIF_GPSLongitude="(120) (57) (6.1257)", EXIF_GPSLongitudeRef="E", EXIF_Model="FC6310R",
                       EXIF_FocalLength="(8.8)", EXIF_DateTimeOriginal="2019:04:11 11:01:21")
    scene = open_scene(p)
    gps = scene.meta["gps"]
    assert gps["source"] == "GDAL EXIF metadata"
    assert gps["lat"] == pytest.approx(-(24 + 40 / 60 + 49.0009 / 3600))
    assert gps["lon"] == pytest.approx(120.951702, abs=1e-6)
    assert scene.capture_time == "2019-04-11T11:01:21" and scene.georef is None  # no height above ground


def test_camera_table() -> None:
    assert lookup_camera("FC6310").sensor_width_mm == 13.2
    assert lookup_camera("fc6310r ").sensor_width_mm == 13.2
    assert lookup_camera("Canon PowerShot S110").sensor_width_mm == 7.44
    assert lookup_camera("PowerShot S110", make="Canon").sensor_width_mm == 7.44
    assert lookup_camera("L1D-20c").focal_mm == pytest.approx(10.26)
    for model in ("FC330", "FC220", "FC7203", "L2D-20c"):
        assert lookup_camera(model) is not None
    assert lookup_camera("Unknown X") is None and lookup_camera(None) is None
    w, f = sensor_width_from_35mm(8.8, 24, 5472, 3648)
    assert w == pytest.approx(13.2, rel=2e-3) and f == 8.8
