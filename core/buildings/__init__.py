"""Per-building damage assessment: footprints in, a score, EMS grade and confidence per building out, calibrated
from a few analyst labels (see DESIGN.md, room ``core/buildings/``).

- :mod:`~core.buildings.footprints`: GeoJSON, GeoPackage, Shapefile, FlatGeobuf (any CRS) and xBD label JSON;
- :mod:`~core.buildings.zonal`: per-building statistics of a score raster, rasterised in its grid;
- :mod:`~core.buildings.assess`: the ``Building`` record, automatic grades, ``buildings.geojson`` / ``.csv``;
- :mod:`~core.buildings.labels`: analysts' labels (damage levels across scales, labels CSV);
- :mod:`~core.buildings.calibrate`: the few-label calibration with cross-validated figures;
- :mod:`~core.buildings.service`: the steps an analysis, the CLI and the pages call.
"""

from core.buildings.assess import COLUMNS, Building, BuildingSet, assess_buildings, grade_counts, write_buildings
from core.buildings.calibrate import Calibration, apply_calibration, fit_calibration, relative_grades_note
from core.buildings.footprints import Footprint, FootprintSet, read_footprint_file, read_footprints
from core.buildings.labels import parse_label, read_labels_csv
from core.buildings.service import assess_analysis, calibrate_analysis, clear_calibration, load_buildings

__all__ = ["Building", "BuildingSet", "COLUMNS", "Calibration", "Footprint", "FootprintSet", "apply_calibration",
           "assess_analysis", "assess_buildings", "calibrate_analysis", "clear_calibration", "fit_calibration",
           "grade_counts", "load_buildings", "parse_label", "read_footprint_file", "read_footprints",
           "read_labels_csv", "relative_grades_note", "write_buildings"]
