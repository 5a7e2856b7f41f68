"""Build ``world.geojson``, the light world layer bundled with the workbench (run once by a developer).

Source: Natural Earth 1:110m "Admin 0 - Countries" and "Populated Places" (capitals), public domain
(https://www.naturalearthdata.com/about/terms-of-use/), as shipped in the ``geopandas==0.14.4`` wheel on PyPI
(``geopandas/datasets/naturalearth_lowres`` and ``naturalearth_cities``; geopandas is BSD-3-Clause, the data keep
Natural Earth's public-domain status). Get the files with ``pip download geopandas==0.14.4 --no-deps`` and unzip
``geopandas/datasets/*``; then::

    python assets/basemap/build_world.py PATH/TO/geopandas/datasets

Coordinates are rounded to 0.01° (about 1 km: borders for orientation, not for measuring) so the file stays small.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyogrio
import shapely


def _round(geom: shapely.Geometry, nd: int = 2) -> dict:
    g = shapely.set_precision(geom, 10.0 ** -nd)
    return json.loads(shapely.to_geojson(g))


def build(datasets: Path, out: Path) -> None:
    """Read both Natural Earth layers from ``datasets`` and write the combined GeoJSON to ``out``."""
    feats = []
    _, _, geoms, fields = pyogrio.raw.read(datasets / "naturalearth_lowres" / "naturalearth_lowres.shp",
                                           columns=["name", "iso_a3"])
    for wkb, name, iso in zip(geoms, fields[0], fields[1], strict=True):
        g = shapely.from_wkb(wkb)
        if g is None or g.is_empty:
            continue
        feats.append({"type": "Feature", "properties": {"kind": "country", "name": str(name), "iso_a3": str(iso)},
                      "geometry": _round(g)})
    _, _, geoms, fields = pyogrio.raw.read(datasets / "naturalearth_cities" / "naturalearth_cities.shp",
                                           columns=["name"])
    for wkb, name in zip(geoms, fields[0], strict=True):
        g = shapely.from_wkb(wkb)
        feats.append({"type": "Feature", "properties": {"kind": "place", "name": str(name)},
                      "geometry": _round(g)})
    doc = {"type": "FeatureCollection",
           "source": "Natural Earth 1:110m Admin 0 Countries and Populated Places (capitals), via the "
                     "geopandas 0.14.4 wheel (geopandas/datasets)",
           "licence": "public domain (Natural Earth terms of use)",
           "features": feats}
    out.write_text(json.dumps(doc, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
    print(f"{out}: {len(feats)} features, {out.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(__file__).with_name("world.geojson"))
