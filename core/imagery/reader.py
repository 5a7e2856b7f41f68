"""Open anything an analyst brings as one :class:`~core.types.Scene`.

Dispatch is on file *content*, never on the extension:

* TIFF with a CRS (GeoTIFF / COG, any CRS, any size) -> ``kind="geotiff"`` (:mod:`core.imagery.raster`): a
  :class:`~core.imagery.sources.RasterSource` reading rasterio windows; band choice by colour interpretation;
  16-bit / float data stretched (2-98 %) with one mapping per scene; nodata, alpha 0 and NaN/Inf -> invalid.
  A TIFF without CRS is opened as an un-georeferenced frame (``georef`` None, a warning in ``meta``).
* JPEG / PNG / other Pillow formats -> ``kind="frame"``: decoded once into memory (EXIF orientation applied), with
  an approximate footprint from drone GPS metadata when possible (:mod:`core.imagery.exif`).
* xBD tiles (``*_pre_disaster`` / ``*_post_disaster`` with a label JSON) -> ``kind="xbd"``, georef fitted from
  the labels (:mod:`core.imagery.xbd`).

``Scene.meta`` keys (all JSON-safe): ``format``, ``warnings`` (list of messages for the user:
:data:`core.i18n.Message` records, put in words with :func:`core.i18n.say` when shown, so that they read in the
language of whoever looks; older results hold plain sentences), ``bands`` (rasters: count, used, alpha, colour
interpretation, note), ``dtype``, ``stretch`` (per-band [low, high] when stretched),
``transform_rotated``, ``gps`` (lat, lon, alt_msl, agl, yaw, gimbal_pitch, source), ``camera``,
``exif_orientation``, ``xbd`` (disaster, phase, buildings...), ``placement``.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from PIL import Image, ImageOps, UnidentifiedImageError
from rasterio.errors import NotGeoreferencedWarning

from core.errors import CoreError, ImageReadError, InputError
from core.geo import georef as geo
from core.i18n import N_, Message, _, message
from core.imagery.exif import frame_footprint, read_frame_metadata
from core.imagery.raster import raster_scene
from core.imagery.sources import (
    MIN_SIDE,
    FrameSource,
    apply_stretch,
    check_pixels,
    check_size,
    percentile_stretch,
)
from core.imagery.xbd import XBD_NAME, find_xbd_labels, load_xbd_labels, xbd_scene_info
from core.types import GeoRef, Scene

__all__ = ["MAX_FRAME_PIXELS", "MIN_SIDE", "open_scene", "place_scene", "place_scene_bounds"]

#: Largest plain (non-tiled) image decoded into memory; bigger ones must be tiled GeoTIFFs.
MAX_FRAME_PIXELS = 180_000_000

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
            raise ImageReadError(*exc.args) from None  # its record kept (core.i18n.recording)
    label_path = Path(labels) if labels is not None else None
    if label_path is None and XBD_NAME.search(p.stem):
        label_path = find_xbd_labels(p)
        if label_path is None:
            scene.meta["warnings"].append(message(N_("file name looks like an xBD tile but no label JSON was found "
                                                     "in ../labels/ or beside it; opened as a plain frame (put its "
                                                     "label JSON there to georeference it)")))
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
        raise InputError(_("file not found: {p}; check the path or upload the file again").format(p=p))
    if not p.is_file():
        raise InputError(_("{p} is not a file (a folder?); choose an image file").format(p=p))
    try:
        with open(p, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise InputError(_("{name} cannot be read ({strerror}); check its permissions").format(
                             name=name, strerror=exc.strerror)) from exc
    if not head:
        raise InputError(_("{name} is empty (0 bytes): the upload or copy "
                           "was interrupted; export or copy it again").format(
                             name=name))
    return head


def _describe(head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return _("it is a PDF document")
    if head.startswith(b"PK\x03\x04"):
        return _("it is a zip archive; unpack it first")
    try:
        text = head.decode("utf-8")
        if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
            return _("it contains text ({text!r}...)").format(text=text[:24].strip())
    except UnicodeDecodeError:
        pass
    return _("its content is not a known image format")


def _too_large(name: str, pixels: int | None, width: int | None = None, height: int | None = None) -> InputError:
    size = f"{width}x{height} " if width and height else ""
    mp = _("{n} megapixels").format(n=f"{pixels / 1e6:.0f}") if pixels else _("too many pixels")
    return InputError(_(
        "{name} is {size}({mp}), more than the {limit} MP a plain image may have; convert it to a tiled GeoTIFF "
        "(e.g. gdal_translate -co TILED=YES -co COMPRESS=DEFLATE in out.tif), which is read window by window").format(
            name=name, size=size, mp=mp, limit=f"{MAX_FRAME_PIXELS / 1e6:.0f}"))


# ------------------------------------------------------------------------------------------------------- frames


def _open_frame(p: Path, name: str, extra_warnings: list[str | Message] | None = None) -> Scene:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own MAX_FRAME_PIXELS governs
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Truncated File Read": we raise instead
            im = Image.open(p)
    except Image.DecompressionBombError as exc:  # header declares > 2x Pillow's limit (~179 MP)
        m = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(name, int(m.group(1)) if m else None) from None
    except UnidentifiedImageError:
        with open(p, "rb") as fh:
            head = fh.read(64)
        raise _PillowCannotDecode(_("{name} is not an image that can be read: {value}. Use a JPEG, PNG or "
                                    "(Geo)TIFF file").format(name=name, value=_describe(head))) from None
    except Exception as exc:  # decoders of untrusted files fail in many ways; none may reach the user raw
        raise ImageReadError(_("{name} is corrupt and cannot be decoded ({name2}: {exc}); export it again").format(
                                 name=name, name2=type(exc).__name__, exc=exc)) from exc
    with im:
        width, height = im.size
        check_pixels(name, width, height)
        if width * height > MAX_FRAME_PIXELS:
            raise _too_large(name, width * height, width, height)
        check_size(name, width, height)
        md = read_frame_metadata(im)
        fmt, mode = im.format, im.mode
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()  # full decode now: truncation must surface here, not in the middle of an analysis
            shown = (ImageOps.exif_transpose(im) or im) if md.orientation != 1 else im  # avoid a full copy
            rgb, valid, conv_note = _pil_to_rgb(shown)
            n_frames = getattr(im, "n_frames", 1)
        except CoreError:
            raise
        except Exception as exc:  # see above: truncated data, broken tags, decoder errors of any type
            raise ImageReadError(_("{name} is truncated or corrupt and cannot be fully decoded ({name2}: {exc}); "
                                   "copy or export the file again").format(
                                     name=name, name2=type(exc).__name__, exc=exc)) from exc
    h, w = rgb.shape[:2]
    meta: dict[str, Any] = {"format": fmt, "mode": mode, "warnings": list(extra_warnings or []) + md.warnings,
                            "exif_orientation": md.orientation}
    if conv_note:
        meta["conversion"] = conv_note
    if n_frames > 1:
        meta["warnings"].append(message(N_("file holds {n} images; only the first is used"), n=n_frames))
    if valid is not None and not valid.any():
        raise InputError(_("{name} contains no valid pixels (fully transparent or not-a-number everywhere)").format(
                             name=name))
    georef, gsd, camera, fp_warnings = frame_footprint(md, w, h)
    meta["warnings"].extend(fp_warnings)
    if md.gps is not None:
        meta["gps"] = md.gps
    if md.model or md.make:
        meta["camera"] = camera
    return Scene(name=name, width=w, height=h, source=FrameSource(rgb, valid), path=p, kind="frame",
                 georef=georef, capture_time=md.capture_time, gsd_m=gsd, meta=meta)


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
    raise _PillowCannotDecode(_("pixel mode {mode} is not supported; convert the image to 8-bit RGB").format(
                                  mode=mode))


# ------------------------------------------------------------------------------------------------------ rasters


def _open_tiff(p: Path, name: str) -> Scene:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(p)
    except Exception as exc:  # RasterioError, or a raw GDAL CPLE error on damaged headers
        try:  # an odd TIFF GDAL refuses may still be a plain image Pillow reads
            return _open_frame(p, name)
        except _PillowCannotDecode:
            raise ImageReadError(_("{name} is a TIFF that cannot be read ({exc}); it may be truncated or corrupt: "
                                   "export or copy it again").format(name=name, exc=exc)) from exc
    with ds:
        try:
            if ds.crs is None and not ds.gcps[0]:
                note = message(N_("{name} has no coordinate reference system: opened as an un-georeferenced frame "
                                  "(its GPS metadata, if any, gives an approximate location; or place it by hand)"),
                               name=name)
                if ds.width * ds.height <= MAX_FRAME_PIXELS:
                    try:
                        return _open_frame(p, name, extra_warnings=[note])
                    except _PillowCannotDecode:
                        pass  # e.g. float or many-band TIFF: read it through rasterio instead
                return raster_scene(p, ds, name, kind="frame", extra_warnings=[note])
            return raster_scene(p, ds, name, kind="geotiff")
        except CoreError:
            raise
        except Exception as exc:  # GDAL raises CPLE_* errors (not RasterioError) for some damaged tags
            raise ImageReadError(_("{name} is a damaged TIFF ({name2}: {exc}); export or copy it again").format(
                                     name=name, name2=type(exc).__name__, exc=exc)) from exc


# ---------------------------------------------------------------------------------------------------------- xBD


def _attach_xbd(scene: Scene, label_path: Path, explicit: bool) -> None:
    try:
        labels = load_xbd_labels(label_path)
    except InputError as exc:
        if explicit:
            raise
        scene.meta["warnings"].append(message(N_("xBD label ignored: {message}"), message=exc))
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
