"""Open anything an analyst brings as one :class:`~core.types.Scene`.

Dispatch is on file *content*, never on the extension:

* TIFF with a CRS (GeoTIFF / COG, any CRS, any size) -> ``kind="geotiff"``: a :class:`RasterSource` reading
  rasterio windows; band choice by colour interpretation; 16-bit / float data stretched (2-98 %) with one mapping
  per scene; nodata, alpha 0 and NaN/Inf -> invalid. A TIFF without CRS is opened as an un-georeferenced frame.
* JPEG / PNG / other Pillow formats -> ``kind="frame"``: decoded once into memory (EXIF orientation applied), with
  an approximate footprint from drone GPS metadata when possible (:mod:`core.imagery_exif`).
* xBD tiles (``*_pre_disaster`` / ``*_post_disaster`` with a label JSON) -> ``kind="xbd"``, georef fitted from
  the labels (:mod:`core.imagery_xbd`).

``Scene.meta`` keys (all JSON-safe): ``format``, ``warnings`` (list of messages for the user), ``bands`` (rasters:
count, used, alpha, colour interpretation, note), ``dtype``, ``stretch`` (per-band [low, high] when stretched),
``transform_rotated``, ``gps`` (lat, lon, alt_msl, agl, yaw, gimbal_pitch, source), ``camera``,
``exif_orientation``, ``xbd`` (disaster, phase, buildings...), ``placement``.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image, ImageOps, UnidentifiedImageError
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.transform import from_gcps
from rasterio.windows import Window as RioWindow

from core import geo
from core.errors import GeoreferenceError, ImageReadError, InputError
from core.imagery_exif import exif_datetime, frame_footprint, read_frame_metadata
from core.imagery_sources import FrameSource, RasterSource, apply_stretch, percentile_stretch
from core.imagery_xbd import XBD_NAME, find_xbd_labels, load_xbd_labels, xbd_scene_info
from core.types import GeoRef, Scene, Window

#: Largest plain (non-tiled) image decoded into memory; bigger ones must be tiled GeoTIFFs.
MAX_FRAME_PIXELS = 180_000_000
#: Smallest side an image may have to be analysed.
MIN_SIDE = 32
#: Long side of the decimated read used for the stretch and the "any valid pixel?" check.
SAMPLE_SIDE = 1024
#: Rasters up to this many pixels (or with overviews) are sampled by one decimated read; larger ones by a grid.
DECIMATE_MAX_PIXELS = 50_000_000

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


class _PillowCannotDecode(ImageReadError):
    """Pillow does not know this format or pixel mode (the raster path may still read it)."""


# --------------------------------------------------------------------------------------------------------- public


def open_scene(path: str | Path, *, name: str | None = None, georef: GeoRef | None = None,
               labels: str | Path | None = None) -> Scene:
    """Open an image file as a :class:`Scene` (see the module docstring for what each kind gives).

    ``georef`` overrides any georeferencing found (method "user" unless the given georef names another method);
    ``labels`` names an xBD label JSON explicitly. Raises :class:`InputError` / :class:`ImageReadError` with a
    message saying what to do for missing, empty, non-image, truncated, too small or too large files.
    """
    p = Path(path)
    name = name or p.name
    head = _check_file(p, name)
    if head[:4] in _TIFF_MAGIC:
        scene = _open_tiff(p, name)
    else:
        try:
            scene = _open_frame(p, name)
        except _PillowCannotDecode as exc:
            raise ImageReadError(str(exc)) from None
    label_path = Path(labels) if labels is not None else None
    if label_path is None and XBD_NAME.search(p.stem):
        label_path = find_xbd_labels(p)
        if label_path is None:
            scene.meta["warnings"].append("file name looks like an xBD tile but no label JSON was found in "
                                          "../labels/ or beside it; opened as a plain frame (pass labels=)")
    if label_path is not None:
        _attach_xbd(scene, label_path, explicit=labels is not None)
    if georef is not None:
        geo.validate_georef(georef, scene.width, scene.height)
        if georef.method == "raster":
            georef = dataclasses.replace(georef, method="user", approximate=True,
                                         note=georef.note or "georeference given by the analyst")
        scene.georef = georef
        scene.gsd_m = geo.gsd_m(georef, scene.width, scene.height)
    return scene


def place_scene(scene: Scene, *, center_lat: float, center_lon: float, gsd_m: float, yaw_deg: float = 0) -> Scene:
    """The scene placed by the analyst: centred on a point, ``gsd_m`` metres per pixel, top turned to ``yaw_deg``."""
    g = geo.user_georef(center_lat, center_lon, gsd_m, scene.width, scene.height, yaw_deg)
    placement = {"center_lat": center_lat, "center_lon": center_lon, "gsd_m": gsd_m, "yaw_deg": yaw_deg}
    return dataclasses.replace(scene, georef=g, gsd_m=float(gsd_m), meta={**scene.meta, "placement": placement})


def place_scene_bounds(scene: Scene, west: float, south: float, east: float, north: float) -> Scene:
    """The scene stretched north-up over WGS84 bounds given by the analyst."""
    g = geo.bounds_georef(west, south, east, north, scene.width, scene.height)
    placement = {"west": west, "south": south, "east": east, "north": north}
    return dataclasses.replace(scene, georef=g, gsd_m=geo.gsd_m(g, scene.width, scene.height),
                               meta={**scene.meta, "placement": placement})


# ------------------------------------------------------------------------------------------------------- checks


def _check_file(p: Path, name: str) -> bytes:
    if not p.exists():
        raise InputError(f"file not found: {p}; check the path or upload the file again")
    if not p.is_file():
        raise InputError(f"{p} is not a file (a folder?); choose an image file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror}); check its permissions") from exc
    if not head:
        raise InputError(f"{name} is empty (0 bytes): the upload or copy was interrupted; export or copy it again")
    return head


def _check_size(name: str, width: int, height: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(f"{name} is {width}x{height} pixels: too small to analyse, at least "
                         f"{MIN_SIDE}x{MIN_SIDE} is needed")


def _describe(head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "it is a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip archive; unpack it first"
    try:
        text = head.decode("utf-8")
        if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
            return f"it contains text ({text[:24].strip()!r}...)"
    except UnicodeDecodeError:
        pass
    return "its content is not a known image format"


def _too_large(name: str, width: int, height: int) -> InputError:
    return InputError(
        f"{name} is {width}x{height} ({width * height / 1e6:.0f} megapixels), more than the "
        f"{MAX_FRAME_PIXELS / 1e6:.0f} MP a plain image may have; convert it to a tiled GeoTIFF (e.g. "
        "gdal_translate -co TILED=YES -co COMPRESS=DEFLATE in out.tif), which is read window by window")


# ------------------------------------------------------------------------------------------------------- frames


def _open_frame(p: Path, name: str, extra_warnings: list[str] | None = None) -> Scene:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own MAX_FRAME_PIXELS governs
            im = Image.open(p)
    except Image.DecompressionBombError:
        raise _too_large(name, *_header_size(p)) from None
    except UnidentifiedImageError:
        with open(p, "rb") as fh:
            head = fh.read(64)
        raise _PillowCannotDecode(f"{name} is not an image that can be read: {_describe(head)}. "
                                  "Use a JPEG, PNG or (Geo)TIFF file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name} is corrupt and cannot be decoded ({exc}); export it again") from exc
    with im:
        width, height = im.size
        if width * height > MAX_FRAME_PIXELS:
            raise _too_large(name, width, height)
        _check_size(name, width, height)
        md = read_frame_metadata(im)
        fmt, mode = im.format, im.mode
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()  # full decode now: truncation must surface here, not in the middle of an analysis
            shown = ImageOps.exif_transpose(im) or im
            rgb, valid, conv_note = _pil_to_rgb(shown)
        except _PillowCannotDecode:
            raise
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise ImageReadError(f"{name} is truncated or corrupt and cannot be fully decoded ({exc}); copy or "
                                 "export the file again") from exc
        n_frames = getattr(im, "n_frames", 1)
    h, w = rgb.shape[:2]
    meta: dict[str, Any] = {"format": fmt, "mode": mode, "warnings": list(extra_warnings or []) + md.warnings,
                            "exif_orientation": md.orientation}
    if conv_note:
        meta["conversion"] = conv_note
    if n_frames > 1:
        meta["warnings"].append(f"file holds {n_frames} images; only the first is used")
    if valid is not None and not valid.any():
        raise InputError(f"{name} contains no valid pixels (fully transparent or not-a-number everywhere)")
    georef, gsd, camera, fp_warnings = frame_footprint(md, w, h)
    meta["warnings"].extend(fp_warnings)
    if md.gps is not None:
        meta["gps"] = md.gps
    if md.model or md.make:
        meta["camera"] = camera
    return Scene(name=name, width=w, height=h, source=FrameSource(rgb, valid), path=p, kind="frame",
                 georef=georef, capture_time=md.capture_time, gsd_m=gsd, meta=meta)


def _header_size(p: Path) -> tuple[int, int]:
    """Image size from the header only (Pillow with its bomb check off), for error messages."""
    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(p) as im:
            return im.size
    except Exception:
        return 0, 0
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _pil_to_rgb(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """(uint8 RGB, valid mask or None, conversion note) from any Pillow mode."""
    mode = im.mode
    if mode == "RGB":
        return np.array(im), None, None
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        valid = np.array(im.getchannel("A")) > 0
        return np.array(im.convert("RGB")), valid, f"{mode}: alpha used as the validity mask"
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.array(im.convert("RGB")), None, f"{mode} converted to RGB"
    if mode in ("I", "F") or mode.startswith("I;16"):
        arr = np.array(im).astype(np.float64)
        finite = np.isfinite(arr)
        lo, hi = percentile_stretch(arr, finite)
        grey = apply_stretch(arr, lo, hi)
        return np.repeat(grey[..., None], 3, axis=2), (finite if not finite.all() else None), \
            f"{mode} stretched {lo:g}..{hi:g} (2-98 %) to 8-bit grey"
    raise _PillowCannotDecode(f"pixel mode {mode} is not supported; convert the image to 8-bit RGB")


# ------------------------------------------------------------------------------------------------------ rasters


def _open_tiff(p: Path, name: str) -> Scene:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(p)
    except RasterioError as exc:
        try:  # an odd TIFF GDAL refuses may still be a plain image Pillow reads
            return _open_frame(p, name)
        except _PillowCannotDecode:
            raise ImageReadError(f"{name} is a TIFF that cannot be read ({exc}); it may be truncated or "
                                 "corrupt: export or copy it again") from exc
    with ds:
        if ds.crs is None and not ds.gcps[0]:
            note = (f"{name} has no coordinate reference system: opened as an un-georeferenced frame "
                    "(its GPS metadata, if any, gives an approximate location; or place it by hand)")
            if ds.width * ds.height <= MAX_FRAME_PIXELS:
                try:
                    return _open_frame(p, name, extra_warnings=[note])
                except _PillowCannotDecode:
                    pass  # e.g. float or many-band TIFF: read it through rasterio instead
            return _raster_scene(p, ds, name, kind="frame", extra_warnings=[note])
        return _raster_scene(p, ds, name, kind="geotiff")


def _choose_bands(ds: Any) -> tuple[tuple[int, ...], int | None, np.ndarray | None, str]:
    """(bands used as R,G,B or grey, alpha band, palette LUT, note) from colour interpretation and band count."""
    ci = list(ds.colorinterp)
    n = ds.count
    alpha = ci.index(ColorInterp.alpha) + 1 if ColorInterp.alpha in ci else None
    if all(c in ci for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue)):
        bands = tuple(ci.index(c) + 1 for c in (ColorInterp.red, ColorInterp.green, ColorInterp.blue))
        extra = [b for b in range(1, n + 1) if b not in bands and b != alpha]
        note = f"bands {bands} used as R,G,B" + (f"; bands {extra} ignored" if extra else "")
        return bands, alpha, None, note
    colour = [b for b in range(1, n + 1) if b != alpha]
    if ci[0] == ColorInterp.palette:
        cmap = ds.colormap(1)
        lut = np.zeros((max(cmap) + 1, 4), dtype=np.uint8)
        for k, rgba in cmap.items():
            lut[k] = rgba
        return (1,), alpha, lut, "palette band expanded to RGB"
    if len(colour) < 3:
        note = "single band shown as grey" + (f"; band {colour[1]} ignored" if len(colour) > 1 else "")
        return (colour[0],), alpha, None, note
    bands = tuple(colour[:3])
    dropped = colour[3:]
    if n == 4 and alpha is None:
        note = "4 bands without alpha: read as R,G,B,NIR (NAIP order); NIR band 4 dropped"
    else:
        note = f"colour interpretation names no R,G,B: bands {bands} used as R,G,B" + (
            f"; bands {dropped} ignored" if dropped else "")
    return bands, alpha, None, note


def _raster_scene(p: Path, ds: Any, name: str, kind: str, extra_warnings: list[str] | None = None) -> Scene:
    width, height = ds.width, ds.height
    _check_size(name, width, height)
    bands, alpha, lut, band_note = _choose_bands(ds)
    dtype = np.dtype(ds.dtypes[bands[0] - 1])
    flags = ds.mask_flag_enums
    masked = alpha is not None or any(flags[b - 1] != [MaskFlags.all_valid] for b in bands)
    stretched = lut is None and dtype != np.uint8
    src = RasterSource(p, width, height, bands, lut=lut, masked=masked, check_finite=dtype.kind == "f")
    meta: dict[str, Any] = {"format": ds.driver, "dtype": str(dtype), "warnings": list(extra_warnings or []),
                            "bands": {"count": ds.count, "used": list(bands), "alpha": alpha,
                                      "colorinterp": [c.name for c in ds.colorinterp], "note": band_note}}
    try:
        _read_last_block(ds)
        if masked or stretched or src.check_finite:
            data, valid = _sample(src, ds)
            if not valid.any():
                raise InputError(f"{name} contains no valid pixels: every pixel is nodata, transparent or NaN")
            if stretched:
                src.stretch = [percentile_stretch(data[i], valid) for i in range(data.shape[0])]
                meta["stretch"] = [list(s) for s in src.stretch]
    except RasterioError as exc:
        src.close()
        raise ImageReadError(f"{name} is truncated or corrupt: reading its pixels failed ({exc}); export or "
                             "copy the file again") from exc
    except InputError:
        src.close()
        raise
    georef = _raster_georef(ds, meta) if kind == "geotiff" else None
    tags = ds.tags()
    capture = exif_datetime(tags.get("TIFFTAG_DATETIME") or tags.get("ACQUISITIONDATETIME"))
    return Scene(name=name, width=width, height=height, source=src, path=p, kind=kind, georef=georef,
                 capture_time=capture, gsd_m=geo.gsd_m(georef, width, height) if georef else None, meta=meta)


def _raster_georef(ds: Any, meta: dict[str, Any]) -> GeoRef | None:
    if ds.crs is not None and not ds.transform.is_identity:
        crs, t, note, approx = ds.crs, ds.transform, "", False
    else:
        gcps, crs = ds.gcps
        t = from_gcps(gcps)
        note, approx = f"affine fitted to {len(gcps)} ground control points", True
        if crs is None:
            meta["warnings"].append("raster has a CRS but no geotransform: treated as un-georeferenced")
            return None
    crs_str = crs.to_string() if crs.to_epsg() is not None else crs.to_wkt()
    georef = GeoRef(crs=crs_str, transform=tuple(float(v) for v in t[:6]),  # type: ignore[arg-type]
                    method="raster", approximate=approx, note=note)
    if abs(t.b) > 1e-12 * abs(t.a) or abs(t.d) > 1e-12 * abs(t.e):
        meta["transform_rotated"] = True
        meta["warnings"].append("the raster's geotransform is rotated or sheared: map overlays are reprojected "
                                "north-up and may be slightly approximate")
    try:
        geo.validate_georef(georef, ds.width, ds.height)
    except GeoreferenceError as exc:
        meta["warnings"].append(f"georeferencing ignored: {exc}")
        return None
    return georef


def _read_last_block(ds: Any) -> None:
    bh, bw = ds.block_shapes[0]
    row0 = ((ds.height - 1) // bh) * bh
    col0 = ((ds.width - 1) // bw) * bw
    ds.read(1, window=RioWindow(col0, row0, ds.width - col0, ds.height - row0))


def _sample(src: RasterSource, ds: Any) -> tuple[np.ndarray, np.ndarray]:
    """Band values and validity of a small, whole-scene sample (decimated read, or a grid of windows)."""
    w, h = src.width, src.height
    scale = max(w, h) / SAMPLE_SIDE
    if scale <= 1:
        return src.read_raw()
    out_shape = (max(1, round(h / scale)), max(1, round(w / scale)))
    if ds.overviews(src.bands[0]) or w * h <= DECIMATE_MAX_PIXELS:
        return src.read_raw(out_shape=out_shape)
    n, size = 8, 128
    parts = []
    for i in range(n):
        for j in range(n):
            row = min(h - size, int((i + 0.5) * h / n - size / 2))
            col = min(w - size, int((j + 0.5) * w / n - size / 2))
            parts.append(src.read_raw(Window(max(row, 0), max(col, 0), size, size)))
    data = np.concatenate([d.reshape(d.shape[0], -1) for d, _ in parts], axis=1)
    valid = np.concatenate([v.ravel() for _, v in parts])
    if not valid.any():  # a sparse raster (e.g. a thin strip): look everywhere before declaring it empty
        return src.read_raw(out_shape=out_shape)
    return data, valid


# ---------------------------------------------------------------------------------------------------------- xBD


def _attach_xbd(scene: Scene, label_path: Path, explicit: bool) -> None:
    try:
        labels = load_xbd_labels(label_path)
    except InputError as exc:
        if explicit:
            raise
        scene.meta["warnings"].append(f"xBD label ignored: {exc}")
        return
    georef, info, capture, warns = xbd_scene_info(labels, scene.name, scene.width, scene.height)
    info["labels_path"] = str(label_path)
    scene.meta["xbd"] = info
    scene.meta["warnings"].extend(warns)
    if scene.kind == "frame":
        scene.kind = "xbd"
    if scene.georef is None and georef is not None:
        scene.georef = georef
        scene.gsd_m = geo.gsd_m(georef, scene.width, scene.height)
    scene.capture_time = scene.capture_time or capture
