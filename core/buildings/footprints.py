"""Building footprints in: GeoJSON, GeoPackage, Shapefile (zipped or as its file set), FlatGeobuf, xBD label JSON.

Vector files are read with pyogrio (GDAL/OGR) in any CRS and brought to WGS84 lon/lat. xBD label JSON gives its
``lng_lat`` polygons (lon/lat) or, without them, its pixel ``xy`` polygons, which then belong to the image the
label names (``metadata.img_name``). A building's id is its own: ``uid`` for xBD labels, else an id-like property
(``building_id`` or its shapefile form ``building_i``, ``id``, ``uid``, ``fid``, ``osm_id``, ``objectid``,
``gid``), else the layer's fid, else the row number (1-based). xBD damage subtypes are never read: a footprint
carries no answer.

Every problem with a file is a :class:`~core.errors.InputError` naming the file and what is wrong (no geometry,
no CRS and not lon/lat, not polygons, corrupt); :func:`read_footprints` collects them per file so the other files
(and the rest of the analysis) still go on.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.wkt
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.errors import ShapelyError
from shapely.geometry.base import BaseGeometry

from core.errors import InputError
from core.i18n import _

#: File name endings read as vector layers (a ``.zip`` must hold a shapefile, GeoPackage, GeoJSON or FlatGeobuf).
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".zip")
#: Companion files of a shapefile (uploaded together with its .shp).
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
#: Properties taken as a footprint's own id, in order of preference (case-insensitive).
ID_FIELDS = ("building_id", "building_i", "id", "uid", "fid", "osm_id", "objectid", "gid")
WGS84 = "EPSG:4326"
#: Largest number of footprints read from all files together.
MAX_FOOTPRINTS = 500_000


@dataclass
class Footprint:
    """One building outline: WGS84 lon/lat (``crs`` "EPSG:4326"), or pixel (col, row) of image ``image``."""

    building_id: str
    geometry: BaseGeometry  #: Polygon or MultiPolygon
    source: str  #: the file it came from (name only)
    crs: str | None = WGS84  #: None: ``geometry`` is in pixel coordinates of ``image``
    image: str | None = None  #: image the pixel geometry belongs to (xBD ``xy`` polygons)

    @property
    def is_pixel(self) -> bool:
        """True when the geometry is in image pixels (an xBD label without lon/lat)."""
        return self.crs is None


@dataclass
class FootprintSet:
    """Footprints of every file that could be read, and one message per file that could not."""

    footprints: list[Footprint] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: per-file remarks (features skipped, CRS assumed)
    files: list[str] = field(default_factory=list)  #: names of the files read


def _fail(path: Path, what: str) -> InputError:
    return InputError(_("footprint file {name}: {what}").format(name=path.name, what=what))


def _is_xbd(path: Path) -> dict[str, Any] | None:
    """The parsed label when ``path`` is an xBD label JSON (a ``features`` object with ``xy``/``lng_lat``)."""
    if path.suffix.lower() != ".json":
        return None
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
        if b'"xy"' not in head and b'"lng_lat"' not in head and b'"features": {' not in head:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    feats = data.get("features") if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(feats, dict) and ("xy" in feats or "lng_lat" in feats):
        return dict(data)
    return None


def _polygonal(geom: BaseGeometry | None) -> BaseGeometry | None:
    """The polygonal part of ``geom`` made valid (None when it has none)."""
    if geom is None or geom.is_empty:
        return None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom if not geom.is_empty else None
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
        if parts:
            return shapely.unary_union(parts)
    return None


def read_xbd_footprints(path: Path, data: dict[str, Any] | None = None) -> list[Footprint]:
    """Footprints of an xBD label: ``lng_lat`` polygons when present (lon/lat), else ``xy`` (pixels of the image
    the label names). Damage subtypes are not read."""
    path = Path(path)
    data = data if data is not None else _is_xbd(path)
    if data is None:
        raise _fail(path, _("is not an xBD label JSON (no features.xy / features.lng_lat)"))
    feats = data["features"]
    md = data.get("metadata") or {}
    lnglat = feats.get("lng_lat") or []
    use_ll = bool(lnglat)
    items = lnglat if use_ll else (feats.get("xy") or [])
    image = str(md.get("img_name") or path.with_suffix(".png").name)
    out: list[Footprint] = []
    taken: set[str] = set()
    for k, f in enumerate(items, start=1):
        if not isinstance(f, dict):
            continue
        props = f.get("properties") or {}
        if props.get("feature_type", "building") != "building":
            continue
        try:
            geom = _polygonal(shapely.wkt.loads(str(f.get("wkt", ""))))
        except (ShapelyError, TypeError, ValueError):
            geom = None
        if geom is None:
            continue
        bid = _unique(str(props.get("uid") or k), taken)
        out.append(Footprint(bid, geom, path.name, crs=WGS84 if use_ll else None, image=None if use_ll else image))
    if not items:
        raise _fail(path, _("has no building polygons (features.xy and features.lng_lat are empty)"))
    if not out:
        raise _fail(path, _("has no readable building polygons in its WKT; give another label file or footprints"))
    return out


def _unique(bid: str, taken: set[str]) -> str:
    out, n = bid, 2
    while out in taken:
        out = f"{bid}-{n}"
        n += 1
    taken.add(out)
    return out


def _dataset(path: Path) -> str:
    """The GDAL name to open ``path`` with (a zip is read through /vsizip/)."""
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if not n.endswith("/") and "__MACOSX" not in n]
        except (zipfile.BadZipFile, OSError) as exc:
            raise _fail(path, _("is not a readable zip archive ({exc}); zip the shapefile's .shp, .shx, .dbf and "
                                ".prj together").format(exc=exc)) from exc
        vec = [n for n in names if Path(n).suffix.lower() in (".shp", ".gpkg", ".geojson", ".fgb", ".json")]
        if not vec:
            raise _fail(path, _("holds no vector file (.shp with its .shx/.dbf/.prj, .gpkg, .geojson or .fgb)"))
        shp = [n for n in vec if n.lower().endswith(".shp")]
        if shp:
            stems = {str(Path(n).with_suffix("")).lower() for n in names}
            for s in shp:
                base = str(Path(s).with_suffix("")).lower()
                missing = [ext for ext in (".shx", ".dbf") if f"{base}{ext}" not in
                           {n.lower() for n in names}]
                if missing and base in stems:
                    raise _fail(path, _("the shapefile {shp} in it lacks its {missing} companion file(s); zip every "
                                        "part of the shapefile together").format(shp=Path(s).name,
                                                                                 missing=", ".join(missing)))
        return f"/vsizip/{path.resolve()}/{(shp or vec)[0]}"
    if path.suffix.lower() == ".shp":
        missing = [ext for ext in (".shx", ".dbf") if not any(path.with_suffix(e).is_file()
                                                               for e in (ext, ext.upper()))]
        if missing:
            raise _fail(path, _("the shapefile lacks its {missing} companion file(s); give the .shp, .shx, .dbf "
                                "and .prj together (or one zip of them)").format(missing=", ".join(missing)))
    return str(path)


def _layer_crs(path: Path, crs: str | None, xy: np.ndarray) -> tuple[str, str | None]:
    """(CRS to read the coordinates in, note) for a layer; lon/lat is assumed only when it has no CRS and every
    coordinate is within ±180/±90."""
    if crs:
        try:
            CRS.from_user_input(crs)
        except CRSError as exc:
            raise _fail(path, _("has a coordinate reference system that cannot be used ({exc}); save it in WGS84 "
                                "(EPSG:4326) or another EPSG coordinate system").format(exc=exc)) from exc
        return crs, None
    if xy.size and np.all(np.abs(xy[:, 0]) <= 180.0) and np.all(np.abs(xy[:, 1]) <= 90.0):
        return WGS84, _("{name} has no CRS: its coordinates look like longitude/latitude and are read as such").format(
            name=path.name)
    raise _fail(path, _("has no coordinate reference system and its coordinates are not longitude/latitude; save it "
                        "with its CRS (a .prj beside a shapefile, or GeoPackage / GeoJSON in EPSG:4326)"))


def read_vector_footprints(path: Path) -> tuple[list[Footprint], list[str]]:
    """Footprints of a vector file (every polygon layer), in WGS84, and notes about what was skipped."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    path = Path(path)
    ds = _dataset(path)
    notes: list[str] = []
    try:
        layers = pyogrio.list_layers(ds)
    except (DataSourceError, DataLayerError, OSError, RuntimeError) as exc:
        raise _fail(path, _("cannot be read as a vector file ({exc}); give GeoJSON, GeoPackage, a zipped "
                            "shapefile, FlatGeobuf or an xBD label JSON").format(exc=_short(exc))) from exc
    poly_layers = [str(n) for n, t in layers if t is None or "polygon" in str(t).lower()
                   or str(t).lower() in ("unknown", "geometry", "geometrycollection")]
    if not len(layers):
        raise _fail(path, _("has no layers; give a file with building polygons"))
    if not poly_layers:
        kinds = ", ".join(sorted({str(t) for _n, t in layers}))
        raise _fail(path, _("holds {kinds} geometries, not polygons; building footprints must be polygons").format(
            kinds=kinds))
    out: list[Footprint] = []
    taken: set[str] = set()
    other_kinds: set[str] = set()
    for layer in poly_layers:
        try:
            meta, fids, wkb, fields = pyogrio.raw.read(ds, layer=layer, return_fids=True)
        except (DataSourceError, DataLayerError, OSError, RuntimeError, ValueError) as exc:
            raise _fail(path, _("layer {layer!r} is damaged or unreadable ({exc}); save it again from your GIS")
                        .format(layer=layer, exc=_short(exc))) from exc
        geoms = shapely.from_wkb(wkb, on_invalid="ignore") if wkb is not None else np.array([])
        names = [str(n) for n in meta.get("fields", [])]
        ids = _ids(names, fields, fids, meta, len(geoms))
        polys: list[tuple[int, BaseGeometry]] = []
        for k, g in enumerate(geoms):
            pg = _polygonal(g)
            if pg is None:
                if g is not None and not g.is_empty:
                    other_kinds.add(g.geom_type)
                continue
            polys.append((k, pg))
        if not polys:
            continue
        coords = shapely.get_coordinates([g for _k, g in polys])
        crs, note = _layer_crs(path, meta.get("crs"), coords)
        if note:
            notes.append(note)
        arr = np.array([g for _k, g in polys], dtype=object)
        if CRS.from_user_input(crs) != CRS.from_user_input(WGS84):
            from core.geo.georef import _transformer

            tr = _transformer(crs, WGS84)
            arr = shapely.transform(arr, lambda xy, tr=tr: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
        prefix = f"{layer}:" if len(poly_layers) > 1 else ""
        for (k, _poly), g in zip(polys, arr, strict=True):
            if not np.all(np.isfinite(shapely.get_coordinates(g))):
                continue
            out.append(Footprint(_unique(prefix + ids[k], taken), g, path.name))
    if not out:
        if other_kinds:
            raise _fail(path, _("holds {kinds} geometries, not polygons; building footprints must be polygons")
                        .format(kinds=", ".join(sorted(other_kinds))))
        raise _fail(path, _("has no geometry (every feature's geometry is empty or missing)"))
    if other_kinds:
        notes.append(_("{name}: {kinds} features skipped (not polygons)").format(
            name=path.name, kinds=", ".join(sorted(other_kinds))))
    return out, notes


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def _ids(names: Sequence[str], fields: Sequence[Any], fids: Any, meta: dict[str, Any], n: int) -> list[str]:
    """Each feature's own id: an id-like property, else the layer's fid, else the row number (1-based)."""
    lower = {nm.lower(): k for k, nm in enumerate(names)}
    for cand in ID_FIELDS:
        k = lower.get(cand)
        if k is None:
            continue
        vals = [_id_text(v) for v in fields[k]]
        if all(vals) and len(set(vals)) == len(vals):
            return [str(v) for v in vals]
    if meta.get("fid_column") and fids is not None and len(fids) == n:
        return [str(int(v)) for v in fids]
    return [str(k + 1) for k in range(n)]


def _id_text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return str(v).strip()


def read_footprint_file(path: str | Path) -> tuple[list[Footprint], list[str]]:
    """Footprints of one file (vector layer or xBD label JSON) and notes; :class:`InputError` when unusable."""
    p = Path(path)
    if not p.exists():
        raise _fail(p, _("not found; check the path"))
    if p.is_dir():
        raise _fail(p, _("is a folder; give the footprint file itself (for a shapefile its .shp, or a zip of it)"))
    if p.stat().st_size == 0:
        raise _fail(p, _("is empty; give the footprint file again"))
    xbd = _is_xbd(p)
    if xbd is not None:
        return read_xbd_footprints(p, xbd), []
    if p.suffix.lower() not in VECTOR_SUFFIXES:
        raise _fail(p, _("has an unsupported type {suffix}; give GeoJSON, GeoPackage, a shapefile (.shp with its "
                         "parts, or zipped), FlatGeobuf or an xBD label JSON").format(
                             suffix=p.suffix or _("(no extension)")))
    return read_vector_footprints(p)


def read_footprints(paths: Iterable[str | Path]) -> FootprintSet:
    """Footprints of every file in ``paths``; a file that cannot be used adds a message to ``errors`` and the others
    are still read. Ids stay unique: when two files share one, the later is prefixed with its file stem."""
    out = FootprintSet()
    taken: set[str] = set()
    for path in paths:
        p = Path(path)
        if p.suffix.lower() in (".shx", ".dbf", ".prj", ".cpg"):
            continue  # the companion files of a shapefile given as its file set
        try:
            fps, notes = read_footprint_file(p)
        except InputError as exc:
            out.errors.append(str(exc))
            continue
        out.files.append(p.name)
        out.notes.extend(notes)
        for fp in fps:
            if fp.building_id in taken:
                fp.building_id = _unique(f"{p.stem}:{fp.building_id}", taken)
            else:
                taken.add(fp.building_id)
            out.footprints.append(fp)
        if len(out.footprints) > MAX_FOOTPRINTS:
            raise InputError(_("more than {n} footprints: split the area into several analyses").format(
                n=f"{MAX_FOOTPRINTS:,}"))
    return out
