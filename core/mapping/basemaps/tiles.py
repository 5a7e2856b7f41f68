"""Tiles from an MBTiles file or an XYZ tile folder, chosen for an area and embedded in the map.

The browser never asks a server for a tile: the tiles covering the analysed scenes (with a margin, from the
source's lowest zoom up to its highest or until a size budget is reached) travel inside the map's HTML as
``data:`` URIs, and a small Leaflet layer (:mod:`core.mapping.basemaps.layers`) looks them up by ``z/x/y``. Zooming in
past the deepest embedded level enlarges its tiles (Leaflet's ``maxNativeZoom``). This works offline, through the
same connection as the rest of the app, for a browser on another machine as well.
"""

from __future__ import annotations

import base64
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from core.errors import InputError
from core.i18n import _
from core.mapping.basemaps.sources import TILE_SUFFIXES, connect_ro

#: Most tiles and bytes embedded in one map (a few MB keeps the page quick; the deepest levels go first).
MAX_TILES = 1500
MAX_BYTES = 12_000_000
_MIME = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}


def tile_range(bounds: tuple[float, float, float, float], z: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` inclusive XYZ tile range at zoom ``z`` covering ``bounds`` (west, south, east, north)."""
    w, s, e, n = bounds
    n_tiles = 1 << z

    def tx(lon: float) -> int:
        return min(n_tiles - 1, max(0, int((lon + 180.0) / 360.0 * n_tiles)))

    def ty(lat: float) -> int:
        lat = max(min(lat, 85.0511), -85.0511)
        r = math.radians(lat)
        return min(n_tiles - 1, max(0, int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n_tiles)))

    return tx(w), ty(n), tx(e), ty(s)


def _mime(data: bytes) -> str | None:
    for magic, mime in _MIME.items():
        if data.startswith(magic):
            return mime if mime != "image/webp" or data[8:12] == b"WEBP" else None
    return None


class MBTiles:
    """Read-only access to an MBTiles file (``tiles(zoom_level, tile_column, tile_row, tile_data)``, TMS rows)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn = connect_ro(self.path)
        try:
            names = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table','view')")}
        except sqlite3.Error as exc:
            self._conn.close()
            raise InputError(_("{name} cannot be read as MBTiles ({exc}); choose an MBTiles file made by a tile tool "
                               "(e.g. gdal_translate -of MBTILES)").format(name=self.path.name, exc=exc)) from exc
        if "tiles" not in names:
            self._conn.close()
            raise InputError(_("{name} is an SQLite file without a 'tiles' table, so not an MBTiles file; choose an "
                               "MBTiles file made by a tile tool (e.g. gdal_translate -of MBTILES)").format(
                                   name=self.path.name))
        self.metadata: dict[str, str] = {}
        if "metadata" in names:
            try:
                self.metadata = {str(k): str(v) for k, v in self._conn.execute("SELECT name, value FROM metadata")}
            except sqlite3.Error:
                self.metadata = {}

    def __enter__(self) -> MBTiles:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def zoom_range(self) -> tuple[int, int] | None:
        """Lowest and highest zoom with tiles (None when empty)."""
        try:
            row = self._conn.execute("SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles").fetchone()
        except sqlite3.Error as exc:
            raise InputError(_("{name} cannot be read as MBTiles ({exc}); choose an MBTiles file made by a tile tool "
                               "(e.g. gdal_translate -of MBTILES)").format(name=self.path.name, exc=exc)) from exc
        return None if row is None or row[0] is None else (int(row[0]), int(row[1]))

    def tiles(self, z: int, x0: int, y0: int, x1: int, y1: int) -> Iterator[tuple[int, int, int, bytes]]:
        """``(z, x, y, data)`` of the stored tiles in the XYZ range (rows converted from TMS)."""
        top = (1 << z) - 1
        rows = self._conn.execute(
            "SELECT tile_column, tile_row, tile_data FROM tiles WHERE zoom_level=? AND tile_column BETWEEN ? AND ? "
            "AND tile_row BETWEEN ? AND ?", (z, x0, x1, top - y1, top - y0))
        for col, row, data in rows:
            yield z, int(col), top - int(row), bytes(data)


class TileFolder:
    """An XYZ tile folder ``{z}/{x}/{y}.ext``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def zoom_range(self) -> tuple[int, int] | None:
        """Lowest and highest zoom folder."""
        zs = [int(p.name) for p in self.path.iterdir() if p.is_dir() and p.name.isdigit() and len(p.name) <= 2]
        return (min(zs), max(zs)) if zs else None

    def tiles(self, z: int, x0: int, y0: int, x1: int, y1: int) -> Iterator[tuple[int, int, int, bytes]]:
        """``(z, x, y, data)`` of the tile files in the range."""
        for x in range(x0, x1 + 1):
            col = self.path / str(z) / str(x)
            if not col.is_dir():
                continue
            for y in range(y0, y1 + 1):
                for ext in TILE_SUFFIXES:
                    f = col / f"{y}{ext}"
                    if f.is_file():
                        yield z, x, y, f.read_bytes()
                        break


@dataclass
class EmbeddedTiles:
    """Tiles chosen for a map: ``tiles`` maps ``"z/x/y"`` to a ``data:`` URI."""

    tiles: dict[str, str] = field(default_factory=dict)
    min_zoom: int = 0
    max_native_zoom: int = 0
    n_bytes: int = 0
    truncated: bool = False  #: deeper levels were left out to keep the map light
    attribution: str = ""


def _pad(bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    w, s, e, n = bounds
    dx, dy = max((e - w) * 0.5, 0.002), max((n - s) * 0.5, 0.002)
    return max(w - dx, -180.0), max(s - dy, -85.0), min(e + dx, 180.0), min(n + dy, 85.0)


def embed_tiles(source: MBTiles | TileFolder, bounds: tuple[float, float, float, float], *,
                max_tiles: int = MAX_TILES, max_bytes: int = MAX_BYTES) -> EmbeddedTiles:
    """The tiles of ``source`` around ``bounds`` (west, south, east, north in WGS84, padded by half their size),
    zoom by zoom from the lowest, until ``max_tiles`` / ``max_bytes`` would be passed."""
    zr = source.zoom_range()
    out = EmbeddedTiles()
    if zr is None:
        return out
    out.min_zoom = out.max_native_zoom = zr[0]
    area = _pad(bounds)
    for z in range(zr[0], min(zr[1], 24) + 1):
        x0, y0, x1, y1 = tile_range(area, z)
        if (x1 - x0 + 1) * (y1 - y0 + 1) + len(out.tiles) > max_tiles * 4:  # far too many to even look at
            out.truncated = True
            break
        level: dict[str, str] = {}
        size = 0
        for tz, tx, ty, data in source.tiles(z, x0, y0, x1, y1):
            mime = _mime(data)
            if mime is None:
                continue
            level[f"{tz}/{tx}/{ty}"] = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
            size += len(data)
        if len(out.tiles) + len(level) > max_tiles or out.n_bytes + size > max_bytes:
            out.truncated = True
            break
        out.tiles.update(level)
        out.n_bytes += size
        if level:
            out.max_native_zoom = z
    if isinstance(source, MBTiles):
        out.attribution = source.metadata.get("attribution", "")
    return out
