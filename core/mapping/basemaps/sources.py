"""Offline basemaps from the analyst's own files: what each kind is and how a path is checked.

Kinds (:data:`KINDS`):

* ``world``: the bundled world layer (country borders and capitals, Natural Earth, public domain:
  ``assets/basemap/``), always available, so the map is never blank.
* ``mbtiles``: an MBTiles file (SQLite: ``tiles`` + ``metadata``; PNG, JPEG or WebP tiles, TMS rows).
* ``xyz``: a folder of tiles ``{z}/{x}/{y}.png|jpg|jpeg|webp`` (XYZ rows, as gdal2tiles ``--xyz`` or most tile
  downloaders write them).
* ``geotiff``: a georeferenced GeoTIFF / COG orthophoto, warped to Web Mercator as the analysed imagery is.
* ``vector``: GeoJSON or GeoPackage layers (roads, boundaries, footprints), read with pyogrio, any CRS.

Nothing is fetched from a network: tiles and rasters are read from disk and handed to the browser inside the
map (:mod:`core.mapping.basemaps.layers`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core.assets import ASSETS
from core.errors import InputError
from core.i18n import N_, _

KINDS = ("world", "mbtiles", "xyz", "geotiff", "vector")
#: What each kind is called (English, marked for translation: shown through ``_()``, as :attr:`Basemap.label` does).
KIND_LABEL = {"world": N_("World borders and capitals (bundled)"), "mbtiles": N_("MBTiles tiles"),
              "xyz": N_("XYZ tile folder"), "geotiff": N_("GeoTIFF orthophoto"), "vector": N_("Vector layer")}
WORLD_PATH = ASSETS / "basemap" / "world.geojson"
WORLD_SOURCE = N_("Natural Earth 1:110m countries and populated places (public domain), bundled with the "
                  "workbench (assets/basemap)")
TILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
RASTER_SUFFIXES = (".tif", ".tiff", ".gtiff", ".cog")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg")
_Z = re.compile(r"^\d{1,2}$")


@dataclass(frozen=True)
class Basemap:
    """One basemap layer chosen for a case: its kind, the file or folder it comes from and a display name."""

    kind: str
    path: str
    name: str

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form (stored per case)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Basemap:
        """Inverse of :meth:`to_dict`; raises :class:`InputError` on a malformed entry."""
        try:
            kind, path, name = str(d["kind"]), str(d["path"]), str(d.get("name") or Path(str(d["path"])).name)
        except (KeyError, TypeError) as exc:
            raise InputError(_("a stored basemap entry is malformed ({entry}); choose the basemap again").format(
                entry=repr(d))) from exc
        if kind not in KINDS:
            raise InputError(_("unknown basemap kind {kind!r}; known: {kinds}").format(kind=kind,
                                                                                       kinds=", ".join(KINDS)))
        return cls(kind, path, name)

    @property
    def label(self) -> str:
        """"GeoTIFF orthophoto: ortho.tif", in the language in use."""
        return _(KIND_LABEL[self.kind]) if self.kind == "world" else f"{_(KIND_LABEL[self.kind])}: {self.name}"


WORLD = Basemap("world", str(WORLD_PATH), "world")


def detect_kind(path: Path) -> str:
    """The basemap kind of ``path`` from what it is (a folder of tiles, an MBTiles file, a raster, a vector file)."""
    if path.is_dir():
        return "xyz"
    suffix = path.suffix.lower()
    if suffix == ".mbtiles":
        return "mbtiles"
    if suffix in RASTER_SUFFIXES:
        return "geotiff"
    if suffix in VECTOR_SUFFIXES:
        return "vector"
    raise InputError(_("{name} is not a basemap this workbench reads: give an .mbtiles file, a folder of "
                       "{{z}}/{{x}}/{{y}} tiles, a GeoTIFF (.tif) orthophoto, or a GeoJSON / GeoPackage (.geojson, "
                       ".gpkg) vector layer").format(name=path.name))


def check_basemap(raw: str | Path, name: str = "", *, also: tuple[Path, ...] = ()) -> Basemap:
    """A :class:`Basemap` for the file or folder ``raw``, after checking that it can be drawn. Raises
    :class:`InputError` saying what is wrong (missing, unreadable, not georeferenced, no tiles) and what to do.
    ``also``: folders allowed besides ``$BDA_SERVER_PATHS`` (the workspace, for uploaded basemaps)."""
    text = str(raw).strip()
    if not text:
        raise InputError(_("give the path of a basemap file or tile folder on the server"))
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise InputError(_("{path!r} is not an absolute path; give the full path on the server, starting with /")
                         .format(path=text))
    check_allowed(path, also)
    if not path.exists():
        raise InputError(_("{path} does not exist on the server; give the full path of an .mbtiles file, a tile "
                           "folder, a GeoTIFF or a GeoJSON / GeoPackage file").format(path=path))
    path = path.resolve()
    kind = detect_kind(path)
    {"mbtiles": _check_mbtiles, "xyz": _check_xyz, "geotiff": _check_geotiff, "vector": _check_vector}[kind](path)
    return Basemap(kind, str(path), name.strip() or path.name)


def check_allowed(path: Path, also: tuple[Path, ...] = ()) -> None:
    """Raise :class:`InputError` when ``$BDA_SERVER_PATHS`` is set and ``path`` lies outside its folders and the
    folders ``also`` (the same rule as for input images, :mod:`core.server_files.paths`, a team server's included:
    there, only ``also`` opens the workspace)."""
    from core.server_files.paths import ENV_SERVER_PATHS, allowed_roots, inside_roots

    real = path.resolve()
    if any(real.is_relative_to(a.resolve()) for a in also):
        return
    roots = allowed_roots(real)
    if not inside_roots(real, roots):
        raise InputError(_("{path} is outside the folders this server allows ({roots}); copy the basemap into one "
                           "of them, or ask the administrator to add its folder to {env}").format(
                               path=path, roots=", ".join(map(str, roots)), env=ENV_SERVER_PATHS))


def _check_mbtiles(path: Path) -> None:
    from core.mapping.basemaps.tiles import MBTiles

    with MBTiles(path) as mb:
        if mb.zoom_range() is None:
            raise InputError(_("{name} holds no tiles; choose an MBTiles file with tiles in it").format(name=path.name))


def _check_xyz(path: Path) -> None:
    zooms = [p for p in path.iterdir() if p.is_dir() and _Z.match(p.name)]
    if not zooms or not any(f.suffix.lower() in TILE_SUFFIXES for z in zooms for f in z.glob("*/*")):
        raise InputError(_("{path} is not a tile folder: it needs {{z}}/{{x}}/{{y}}.png (or .jpg, .webp) tiles, "
                           "e.g. 12/3456/1234.png").format(path=path))


def _check_geotiff(path: Path) -> None:
    from core.imagery.reader import open_scene

    scene = open_scene(path)
    try:
        if scene.georef is None:
            raise InputError(_("{name} has no georeference (CRS and transform), so it cannot be placed on the "
                               "map; give a georeferenced GeoTIFF / COG orthophoto").format(name=path.name))
    finally:
        scene.close()


def _check_vector(path: Path) -> None:
    from core.mapping.basemaps.vector import read_vector

    read_vector(path, max_features=1)


def is_sqlite(path: Path) -> bool:
    """True when ``path`` starts with SQLite's file header."""
    try:
        with path.open("rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only SQLite connection to ``path`` (a basemap file is never written)."""
    if not is_sqlite(path):
        raise InputError(_("{name} is not an SQLite file, so not an MBTiles / GeoPackage file; choose the basemap "
                           "file itself").format(name=path.name))
    try:
        return sqlite3.connect(f"file:{quote(str(path))}?mode=ro&immutable=1", uri=True, check_same_thread=False)
    except sqlite3.Error as exc:
        raise InputError(_("cannot open {name}: {exc}").format(name=path.name, exc=exc)) from exc
