"""Vector basemap layers (GeoJSON, GeoPackage) read with pyogrio and reprojected to WGS84 for the map."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.i18n import _

#: Most features drawn from one vector basemap (a whole country's roads would make the page unusable).
MAX_FEATURES = 20_000
_NAME_FIELDS = ("name", "NAME", "Name", "label", "LABEL", "title", "id", "ID")


def read_vector(path: str | Path, *, max_features: int = MAX_FEATURES,
                bounds: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
    """Every layer of a GeoJSON / GeoPackage file as one GeoJSON FeatureCollection in WGS84 lon/lat, each feature
    with ``properties.name`` (its name-like field, "" when none) and ``properties.layer``. ``bounds`` (west, south,
    east, north, WGS84) keeps the features that touch it, when the file's CRS is WGS84 or can be projected.
    Raises :class:`InputError` when the file cannot be read or has no features with geometry."""
    import pyogrio
    import shapely
    from pyproj import CRS, Transformer

    p = Path(path)
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(p) if row[1] is not None]
    except Exception as exc:  # pyogrio raises DataSourceError and GDAL errors of several kinds
        raise InputError(_("cannot read {name} as a vector layer ({exc}); give a GeoJSON or GeoPackage file").format(
            name=p.name, exc=exc)) from exc
    if not layers:
        raise InputError(_("{name} has no layer with geometries; give a GeoJSON or GeoPackage with features").format(
            name=p.name))
    feats: list[dict[str, Any]] = []
    left = max_features
    for layer in layers:
        if left <= 0:
            break
        try:
            meta, _fids, geoms, fields = pyogrio.raw.read(p, layer=layer, max_features=left)
        except Exception as exc:
            raise InputError(_("cannot read the layer {layer!r} of {name} ({exc}); the file may be damaged: save it "
                               "again from your GIS").format(layer=layer, name=p.name, exc=exc)) from exc
        names = list(meta.get("fields", []))
        key = next((n for n in _NAME_FIELDS if n in names), None)
        labels = fields[names.index(key)] if key is not None else [None] * len(geoms)
        shapes = shapely.from_wkb(np.asarray(geoms, dtype=object))
        crs = meta.get("crs")
        if crs:
            try:
                src = CRS.from_user_input(crs)
            except Exception as exc:
                raise InputError(_("the CRS of {name} ({crs}) is not one this workbench knows ({exc}); save the layer "
                                   "in WGS84 (EPSG:4326) or an EPSG coordinate system").format(
                                       name=p.name, crs=crs, exc=exc)) from exc
            if not src.equals(CRS.from_epsg(4326), ignore_axis_order=True):
                tr = Transformer.from_crs(src, "EPSG:4326", always_xy=True)
                shapes = shapely.transform(shapes, lambda xy, t=tr: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))
        box = shapely.box(*bounds) if bounds is not None else None
        for g, label in zip(shapes, labels, strict=True):
            if g is None or g.is_empty or (box is not None and not g.intersects(box)):
                continue
            feats.append({"type": "Feature", "geometry": shapely.geometry.mapping(g),
                          "properties": {"name": "" if label is None else str(label)[:200], "layer": layer}})
        left = max_features - len(feats)
    if not feats and bounds is None:
        raise InputError(_("{name} has no features with geometry; give a layer with features").format(name=p.name))
    return {"type": "FeatureCollection", "features": feats}
