"""A small table of drone / aerial camera sensors, keyed by the EXIF ``Model`` string.

Used to turn a frame's GPS + height above ground into an approximate ground footprint:
``GSD = sensor_width_mm * AGL_m / (focal_mm * image_width_px)``. Sensor sizes are the manufacturers' published
figures for the full (long-side) sensor width; ``native_px`` is the full-resolution still size, used only to warn
when a frame looks cropped rather than resized. When a model is not listed, :func:`sensor_width_from_35mm` derives
an equivalent sensor width from EXIF ``FocalLengthIn35mmFilm`` (defined on the 43.27 mm full-frame diagonal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.i18n import _

#: Diagonal of a 36x24 mm full-frame sensor; CIPA DC-004 defines the 35 mm equivalent focal length on it.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)


@dataclass(frozen=True)
class CameraSpec:
    """Published sensor geometry of one camera model."""

    name: str  #: marketing name, for display
    sensor_width_mm: float  #: long side of the active sensor area
    sensor_height_mm: float
    native_px: tuple[int, int]  #: full-resolution still (width, height)
    focal_mm: float | None = None  #: fixed-lens focal length, used when EXIF FocalLength is missing


_1IN = (13.2, 8.8)  # 1-inch type, 3:2
_1_2_3IN = (6.17, 4.55)  # 1/2.3-inch type, 4:3
_4_3 = (17.3, 13.0)  # Four Thirds

#: Normalised EXIF Model (upper case, single spaces) -> spec.
CAMERAS: dict[str, CameraSpec] = {
    # DJI Phantom 4 Pro / Advanced / Pro V2 / RTK: 1-inch 20 MP, 8.8 mm (24 mm equiv.)
    "FC6310": CameraSpec("DJI Phantom 4 Pro / Advanced", *_1IN, (5472, 3648), 8.8),
    "FC6310S": CameraSpec("DJI Phantom 4 Pro V2.0", *_1IN, (5472, 3648), 8.8),
    "FC6310R": CameraSpec("DJI Phantom 4 RTK", *_1IN, (5472, 3648), 8.8),
    # DJI 1/2.3-inch 12 MP cameras
    "FC330": CameraSpec("DJI Phantom 4", *_1_2_3IN, (4000, 3000), 3.61),
    "FC300X": CameraSpec("DJI Phantom 3 Professional", *_1_2_3IN, (4000, 3000), 3.61),
    "FC300S": CameraSpec("DJI Phantom 3 Advanced", *_1_2_3IN, (4000, 3000), 3.61),
    "FC220": CameraSpec("DJI Mavic Pro", *_1_2_3IN, (4000, 3000), 4.73),
    "FC2103": CameraSpec("DJI Mavic Air", *_1_2_3IN, (4056, 3040), 4.5),
    "FC2204": CameraSpec("DJI Mavic 2 Zoom", *_1_2_3IN, (4000, 3000), 4.386),
    "FC7203": CameraSpec("DJI Mavic Mini", *_1_2_3IN, (4000, 3000), 4.49),
    "FC7303": CameraSpec("DJI Mini 2", *_1_2_3IN, (4000, 3000), 4.49),
    # DJI larger sensors
    "L1D-20C": CameraSpec("DJI Mavic 2 Pro (Hasselblad L1D-20c)", *_1IN, (5472, 3648), 10.26),
    "FC3411": CameraSpec("DJI Air 2S", *_1IN, (5472, 3648), 8.38),
    "FC3170": CameraSpec("DJI Mavic Air 2", 6.4, 4.8, (8000, 6000), 4.49),
    "FC3582": CameraSpec("DJI Mini 3 Pro", 9.7, 7.3, (4032, 3024), 6.72),
    "L2D-20C": CameraSpec("DJI Mavic 3 (Hasselblad L2D-20c)", *_4_3, (5280, 3956), 12.29),
    "M3E": CameraSpec("DJI Mavic 3 Enterprise (wide)", *_4_3, (5280, 3956), 12.29),
    "M3T": CameraSpec("DJI Mavic 3 Thermal (wide)", 6.4, 4.8, (8000, 6000), 4.4),
    "FC6520": CameraSpec("DJI Zenmuse X5S", *_4_3, (5280, 3956)),
    "FC6540": CameraSpec("DJI Zenmuse X7", 23.5, 15.7, (6016, 4008)),
    "ZENMUSEP1": CameraSpec("DJI Zenmuse P1", 35.9, 24.0, (8192, 5460)),
    # Other survey cameras
    "CANON POWERSHOT S110": CameraSpec("Canon PowerShot S110", 7.44, 5.58, (4000, 3000), 5.2),
    "CANON POWERSHOT S100": CameraSpec("Canon PowerShot S100", 7.44, 5.58, (4000, 3000), 5.2),
    "S.O.D.A.": CameraSpec("senseFly S.O.D.A.", *_1IN, (5472, 3648), 10.6),
    "ILCE-6000": CameraSpec("Sony Alpha 6000", 23.5, 15.6, (6000, 4000)),
    "DSC-RX1RM2": CameraSpec("Sony RX1R II", 35.9, 24.0, (7952, 5304), 35.0),
}

#: Alternative spellings seen in EXIF for the same camera.
_ALIASES = {"CANON S110": "CANON POWERSHOT S110", "CANON S100": "CANON POWERSHOT S100",
            "MAVIC 3": "L2D-20C", "ZENMUSE P1": "ZENMUSEP1"}


def _normalise(model: str) -> str:
    return " ".join(model.replace("\x00", " ").split()).upper()


def lookup_camera(model: str | None, make: str | None = None) -> CameraSpec | None:
    """The spec for an EXIF ``Model`` (case/whitespace-insensitive; ``make`` prefix tolerated), or None."""
    if not model:
        return None
    key = _normalise(model)
    candidates = [key]
    if make:
        mk = _normalise(make)
        if not key.startswith(mk):
            candidates.append(f"{mk} {key}")
        else:
            candidates.append(key[len(mk):].strip())
    for k in candidates:
        k = _ALIASES.get(k, k)
        if k in CAMERAS:
            return CAMERAS[k]
    return None


def sensor_width_from_35mm(focal_mm: float | None, focal_35mm: float, width: int, height: int) -> tuple[float, float]:
    """Equivalent (sensor width mm, focal mm) from a 35 mm-equivalent focal length.

    With the true focal length known, the crop factor ``f35 / f`` gives the sensor diagonal; its long side follows
    from the image aspect ratio. Without it, the 35 mm frame itself is used (same GSD: both scale together).
    """
    if focal_35mm <= 0 or width <= 0 or height <= 0:
        raise ValueError(_("35 mm focal length and image size must be positive"))
    long_px, short_px = max(width, height), min(width, height)
    f = focal_mm if focal_mm and focal_mm > 0 else focal_35mm
    diag = FULL_FRAME_DIAGONAL_MM * f / focal_35mm
    return diag * long_px / math.hypot(long_px, short_px), f
