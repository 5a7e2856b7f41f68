"""Offline basemaps: the analyst's MBTiles / XYZ tiles, GeoTIFF orthophotos and vector layers, and a bundled world
layer, drawn under the analysis map from local files only (see :mod:`core.mapping.basemaps.sources`)."""

from core.mapping.basemaps.case import case_basemaps, case_sources, shown_basemaps
from core.mapping.basemaps.layers import (
    BasemapLayers,
    basemap_layers,
    geotiff_overlay,
    load_basemap,
    scenes_area,
    source_line,
    world_data,
)
from core.mapping.basemaps.sources import KINDS, WORLD, Basemap, check_basemap, detect_kind

__all__ = ["KINDS", "WORLD", "Basemap", "BasemapLayers", "basemap_layers", "case_basemaps", "case_sources",
           "check_basemap", "detect_kind", "geotiff_overlay", "load_basemap", "scenes_area", "shown_basemaps",
           "source_line", "world_data"]
