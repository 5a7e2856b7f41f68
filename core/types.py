"""Value objects passed between the stages of the one flow (see DESIGN.md).

``Scene`` (pixels + georef + provenance) -> ``Heatmap`` (calibrated score raster on disk) -> ``Finding`` list,
collected in a ``SceneResult``. Everything here is plain data: no I/O beyond what a ``PixelSource`` does, no
streamlit, no torch. Geo results always carry their CRS and transform.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # rasterio and affine load on first use: `python -m core --help` and the app's first page skip them
    from affine import Affine
    from rasterio.windows import Window


@dataclass(frozen=True)
class GeoRef:
    """Where a pixel grid lies on the earth.

    ``transform`` maps pixel (col, row) corners to CRS coordinates: an :class:`affine.Affine`; the six GDAL/rasterio
    coefficients ``(a, b, c, d, e, f)`` (x = a·col + b·row + c, y = d·col + e·row + f), the form ``to_dict`` stores,
    are converted to one. ``crs`` is any string pyproj/rasterio accept ("EPSG:4326", WKT). ``method`` says how it was
    obtained: ``"raster"`` (read from the file), ``"gps-footprint"`` (drone GPS + camera model), ``"fitted"``
    (fitted from pixel<->lon/lat pairs, e.g. xBD labels), ``"user"`` (placed by the analyst).
    ``approximate`` is True for anything but a raster's own georeferencing.
    """

    crs: str
    transform: Affine
    method: str = "raster"
    approximate: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        from affine import Affine

        t: Any = self.transform  # six coefficients (a, b, c, d, e, f) are accepted too, as the class docstring says
        if not isinstance(t, Affine):
            object.__setattr__(self, "transform", Affine(*(float(v) for v in t)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; the transform as its six coefficients (a, b, c, d, e, f), as every version stored it."""
        return {"crs": self.crs, "transform": [float(v) for v in self.transform[:6]], "method": self.method,
                "approximate": self.approximate, "note": self.note}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeoRef:
        """Inverse of :meth:`to_dict`."""
        from affine import Affine

        return cls(crs=d["crs"], transform=Affine(*(float(v) for v in d["transform"][:6])),
                   method=d.get("method", "raster"), approximate=bool(d.get("approximate", False)),
                   note=d.get("note", ""))


class PixelSource(Protocol):
    """Reads RGB pixels of a scene window by window (in memory for frames, rasterio windows for rasters)."""

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """Return (rgb uint8 array H×W×3, valid bool mask H×W) for ``window``; invalid = nodata/alpha 0/NaN."""
        ...

    def close(self) -> None:
        """Release file handles."""
        ...


@dataclass
class Scene:
    """One input image: pixel access + georeferencing + provenance."""

    name: str
    width: int
    height: int
    source: PixelSource = field(repr=False)
    path: Path | None = None
    kind: str = "frame"  #: "geotiff" | "frame" | "xbd"
    georef: GeoRef | None = None
    capture_time: str | None = None  #: ISO 8601 when known
    gsd_m: float | None = None  #: ground sample distance, metres per pixel, when known
    meta: dict[str, Any] = field(default_factory=dict)  #: JSON-safe extras (GPS, camera, bands, warnings)

    def read(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pixels and validity mask of ``window`` (whole scene when None)."""
        if window is None:
            from rasterio.windows import Window

            window = Window(0, 0, self.width, self.height)
        return self.source.read(window)

    def close(self) -> None:
        """Release the pixel source."""
        self.source.close()


@dataclass
class Heatmap:
    """A calibrated anomaly-score raster for one scene.

    Scores are in calibrated units (see detection.calibration): 0 ≈ median normal pixel, 1 = the model's 99th
    percentile of normal pixels. NaN marks nodata. Large scenes keep only ``path`` (float32 GeoTIFF written window by
    window) and a downsampled ``preview``; small scenes may also keep the full ``scores`` array.
    """

    width: int
    height: int
    path: Path | None = None
    scores: np.ndarray | None = field(default=None, repr=False)
    preview: np.ndarray | None = field(default=None, repr=False)
    preview_scale: float = 1.0  #: preview pixel = scale × full-res pixels
    georef: GeoRef | None = None
    image_score: float = float("nan")  #: calibrated image-level score (FCDD: mean of A)
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class Finding:
    """One graded anomalous region. Field names follow what GIS / Copernicus EMS users expect."""

    id: str
    scene_name: str
    polygon_px: list[tuple[float, float]]  #: exterior ring in full-res pixel (col, row) coordinates
    bbox_px: tuple[int, int, int, int]  #: col0, row0, col1, row1 (exclusive)
    area_px: float
    score_mean: float
    score_max: float
    threshold: float
    confidence: float  #: 0..1
    grade: str
    grade_scale: str = "copernicus-ems"
    geometry: dict[str, Any] | None = None  #: GeoJSON Polygon in WGS84 lon/lat (RFC 7946), None without georef
    centroid_lat: float | None = None
    centroid_lon: float | None = None
    mgrs: str | None = None
    area_m2: float | None = None
    location_approximate: bool = False
    det_method: str = "automatic extraction"
    review_status: str = "unreviewed"  #: "unreviewed" | "confirmed" | "rejected"
    analyst: str = ""
    notes: str = ""
    source_name: str = ""
    source_date: str | None = None
    source_gsd: float | None = None
    pre_source_name: str | None = None
    pre_source_date: str | None = None
    model_name: str = ""
    model_version: str = ""
    model_sha256: str = ""
    processed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (tuples become lists)."""
        d = dataclasses.asdict(self)
        d["polygon_px"] = [list(p) for p in self.polygon_px]
        d["bbox_px"] = list(self.bbox_px)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["polygon_px"] = [tuple(p) for p in kw.get("polygon_px", [])]
        kw["bbox_px"] = tuple(kw.get("bbox_px", (0, 0, 0, 0)))
        return cls(**kw)


@dataclass
class SceneResult:
    """Everything the analysis of one scene produced; what pages, reports and the store read."""

    scene_name: str
    width: int
    height: int
    image_score: float
    verdict: str  #: "anomalous" | "normal"
    georef: GeoRef | None
    bounds_wgs84: tuple[float, float, float, float] | None  #: west, south, east, north
    heatmap_path: Path | None
    overlay_path: Path | None
    findings: list[Finding] = field(default_factory=list)
    source_path: Path | None = None
    capture_time: str | None = None
    gsd_m: float | None = None
    pre_scene_name: str | None = None
    change_path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def error_text(self) -> str:
        """Why the input could not be analysed, in the reader's language when the failure was stored as a record
        (``meta["error_message"]``), else as it was stored; ``""`` for an analysed input."""
        from core.i18n import is_message, say

        if self.error is None:
            return ""
        record = self.meta.get("error_message")
        return say(record) if is_message(record) else self.error

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (paths as strings, findings and georef as dicts)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["findings"] = [f.to_dict() for f in self.findings]
        d["georef"] = self.georef.to_dict() if self.georef else None
        d["bounds_wgs84"] = list(self.bounds_wgs84) if self.bounds_wgs84 else None
        for k in ("heatmap_path", "overlay_path", "source_path", "change_path"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneResult:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["findings"] = [Finding.from_dict(f) for f in kw.get("findings", [])]
        kw["georef"] = GeoRef.from_dict(kw["georef"]) if kw.get("georef") else None
        kw["bounds_wgs84"] = tuple(kw["bounds_wgs84"]) if kw.get("bounds_wgs84") else None
        for k in ("heatmap_path", "overlay_path", "source_path", "change_path"):
            kw[k] = Path(kw[k]) if kw.get(k) else None
        return cls(**kw)
