"""Shared builders and fixtures of the workspace tests."""

from __future__ import annotations

from pathlib import Path

from affine import Affine

from core.store import Workspace
from core.types import Finding, GeoRef, SceneResult

HOSTILE = "<script>alert(1)</script> '; DROP TABLE findings; -- \u202e\ufeff 서울 ☢ \"quoted\" \\ \t\n"


def make_finding(fid: str, scene: str, *, geo: bool = True, x0: float = 0.0, width: float = 10.5, **kw) -> Finding:
    """A finding over the pixel box [x0, x0 + width] x [0, 8]."""
    base = dict(
        id=fid, scene_name=scene, polygon_px=[(x0, 0.0), (x0 + width, 0.0), (x0 + width, 8.0), (x0, 8.0)],
        bbox_px=(int(x0), 0, int(x0 + width) + 1, 8), area_px=width * 8, score_mean=1.5, score_max=3.25,
        threshold=1.0, confidence=0.8, grade="damaged",
        geometry={"type": "Polygon", "coordinates": [[[-94.5, 37.05], [-94.49, 37.05], [-94.49, 37.06],
                                                      [-94.5, 37.05]]]} if geo else None,
        centroid_lat=37.055 if geo else None, centroid_lon=-94.495 if geo else None,
        mgrs="15SUA6012345678" if geo else None, area_m2=1234.5 if geo else None, source_name=scene,
        model_name="fcdd_vgg11", model_version="1", model_sha256="ab" * 32, processed_at="2024-05-01T00:00:00Z")
    base.update(kw)
    return Finding(**base)


def make_result(name: str, n_findings: int = 2, *, error: str | None = None, folder: Path | None = None,
                geo: bool = True) -> SceneResult:
    georef = GeoRef("EPSG:32615", Affine(0.5, 0.0, 360000.0, 0.0, -0.5, 4100000.0), method="raster") if geo else None
    return SceneResult(
        scene_name=name, width=640, height=480, image_score=2.5, verdict="anomalous", georef=georef,
        bounds_wgs84=(-94.5, 37.05, -94.49, 37.06) if geo else None,
        heatmap_path=folder / f"{name}.heat.tif" if folder else None,
        overlay_path=folder / f"{name}.overlay.png" if folder else None,
        findings=[] if error else [make_finding(f"f{i}", name, geo=geo, x0=20.0 * i) for i in range(n_findings)],
        source_path=Path("/data/in") / name, capture_time="2011-05-24T16:00:00Z" if geo else None,
        gsd_m=0.5 if geo else None, meta={"bands": 3, "warnings": [HOSTILE]}, error=error)


def new_analysis(ws: Workspace, names: list[str], case: int | None = None) -> int:
    case = case or ws.create_case("case")
    return ws.create_analysis(case, [{"path": f"/data/in/{n}", "name": n} for n in names],
                              model={"name": "fcdd_vgg11", "sha256": "ab" * 32}, threshold=1.0, options={"tile": 224})


