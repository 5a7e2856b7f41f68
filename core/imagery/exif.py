"""Drone / camera frame metadata: GPS, height above ground, heading, camera and capture time.

Three places hold a frame's position, tried in this order (the first valid one wins, invalid ones leave a warning):

1. the EXIF GPS IFD (altitude there is above *sea level*, not above ground);
2. DJI XMP (``drone-dji:GpsLatitude`` / ``GpsLongitude`` or the misspelt ``GpsLongtitude``, ``RelativeAltitude`` =
   height above the take-off point, ``GimbalYawDegree``, ``FlightYawDegree``, ``GimbalPitchDegree``);
3. GDAL-metadata ``EXIF_GPS*`` items (TIFF tag 42112), as written when GDAL re-encodes a drone frame.

From GPS + height above ground + focal length + sensor width (:mod:`.camera`) :func:`frame_footprint` derives
an approximate nadir footprint georef; without height above ground only the GPS point is kept (a map marker).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import ExifTags, Image
from pyproj import Geod

from core.errors import GeoreferenceError
from core.geo import georef as geo
from core.i18n import N_, Message, message
from core.imagery.camera import lookup_camera, sensor_width_from_35mm
from core.types import GeoRef

#: Tilt from nadir (degrees) beyond which a footprint is not attempted, and above which it is flagged oblique.
MAX_TILT_DEG = 45.0
OBLIQUE_TILT_DEG = 10.0
#: Plausible height above ground for a drone or aircraft frame, metres.
MAX_AGL_M = 10000.0

_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_XMP_ATTR = re.compile(r"([A-Za-z][\w.-]*):([A-Za-z]\w*)\s*=\s*\"([^\"]*)\"")
_XMP_ELEM = re.compile(r"<([A-Za-z][\w.-]*):([A-Za-z]\w*)>([^<]*)</\1:\2>")
_XMP_DMS = re.compile(r"^\s*(\d+),(\d+(?:\.\d+)?)(?:,(\d+(?:\.\d+)?))?\s*([NSEW])\s*$", re.IGNORECASE)
_GEOD = Geod(ellps="WGS84")
_GDAL_ITEM = re.compile(r"<Item\s+name=\"([^\"]+)\"[^>]*>([^<]*)</Item>")


@dataclass
class FrameMetadata:
    """What a frame's EXIF / XMP / GDAL metadata says about where and how it was taken."""

    make: str | None = None
    model: str | None = None
    focal_mm: float | None = None
    focal_35mm: float | None = None
    capture_time: str | None = None
    orientation: int = 1
    gps: dict[str, Any] | None = None  #: lat, lon, alt_msl, agl, yaw, gimbal_pitch, source (JSON-safe)
    warnings: list[Message] = field(default_factory=list)


def _num(v: Any) -> float | None:
    """A float from an EXIF rational / number / GDAL "(8.8)" / XMP "+99.96" string, or None."""
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("latin-1", "replace")
    if isinstance(v, str):
        m = _NUM.search(v)
        return float(m.group()) if m else None
    try:
        return float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    s = str(v).replace("\x00", "").strip()
    return s or None


def _dms(v: Any) -> float | None:
    """Degrees from an EXIF (d, m, s) triple, a GDAL "(d) (m) (s)" string or a plain number."""
    if v is None:
        return None
    if isinstance(v, (bytes, str)):
        parts = [float(x) for x in _NUM.findall(v.decode("latin-1") if isinstance(v, bytes) else v)]
    elif isinstance(v, (tuple, list)):
        parts = [p for p in (_num(x) for x in v)]
        if any(p is None for p in parts):
            return math.nan
    else:
        p = _num(v)
        parts = [] if p is None else [p]
    if not parts:
        return None
    parts = (parts + [0.0, 0.0])[:3]
    return parts[0] + parts[1] / 60.0 + parts[2] / 3600.0


def _signed(value: float | None, ref: Any, negative: str) -> float | None:
    r = _text(ref)
    if value is None or r is None:
        return value
    return -abs(value) if r.upper().startswith(negative) else value


def parse_xmp(xmp: bytes | str | None) -> dict[str, str]:
    """``prefix:Name`` -> value for every simple attribute or element of an XMP packet (tolerates junk around it)."""
    if not xmp:
        return {}
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
    out: dict[str, str] = {}
    for rx in (_XMP_ELEM, _XMP_ATTR):
        for prefix, name, value in rx.findall(text):
            out.setdefault(f"{prefix}:{name}", value.strip())
    return out


def parse_gdal_metadata(xml: Any) -> dict[str, str]:
    """Item name -> value of a GDAL metadata XML block (TIFF tag 42112)."""
    text = _text(xml)
    return dict(_GDAL_ITEM.findall(text)) if text else {}


def exif_datetime(value: Any, offset: Any = None) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" or ISO 8601 text -> ISO 8601 string (EXIF offset appended when given)."""
    s = _text(value)
    if not s:
        return None
    m = re.match(r"(\d{4}):(\d\d):(\d\d)(?:[ T](\d\d):(\d\d):(\d\d))?", s)
    if m:
        try:
            dt = datetime(*(int(g) for g in m.groups() if g is not None))
        except ValueError:  # "0000:00:00 00:00:00" and other placeholders
            return None
        off = _text(offset)
        return dt.isoformat() + (off if off and re.fullmatch(r"[+-]\d\d:\d\d", off) else "")
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).isoformat()
    except ValueError:
        return None


def _check_position(lat: float | None, lon: float | None, source: str, warnings: list[Message]) -> bool:
    if lat is None or lon is None:
        return False
    if not (math.isfinite(lat) and math.isfinite(lon)):
        warnings.append(message(N_("GPS position in {source} is not a number (lat={lat}, lon={lon}); location "
                                   "ignored"), source=source, lat=str(lat), lon=str(lon)))
        return False
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        warnings.append(message(N_("GPS position in {source} is out of range (lat={lat}, lon={lon}; latitude must "
                                   "be within ±90° and longitude within ±180°); location ignored"),
                                source=source, lat=f"{lat:g}", lon=f"{lon:g}"))
        return False
    if lat == 0.0 and lon == 0.0:
        warnings.append(message(N_("GPS position in {source} is 0°, 0° (no satellite fix); location ignored"),
                                source=source))
        return False
    return True


def _xmp_coord(v: str | None) -> float | None:
    if v is None:
        return None
    m = _XMP_DMS.match(v)
    if m:
        deg = float(m.group(1)) + float(m.group(2)) / 60.0 + float(m.group(3) or 0.0) / 3600.0
        return -deg if m.group(4).upper() in "SW" else deg
    return _num(v)


def read_frame_metadata(im: Image.Image) -> FrameMetadata:
    """Collect camera, time, orientation and GPS of a Pillow image (before any transpose)."""
    md = FrameMetadata()
    try:
        exif = im.getexif()
        exif_ifd = dict(exif.get_ifd(ExifTags.IFD.Exif))
        gps_ifd = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
    except Exception as exc:  # Pillow raises assorted errors on malformed EXIF; the pixels may still be fine
        md.warnings.append(message(N_("EXIF metadata is unreadable ({exc}); camera and GPS information ignored"),
                                   exc=exc))
        exif, exif_ifd, gps_ifd = {}, {}, {}
    xmp = parse_xmp(im.info.get("xmp") or im.info.get("XML:com.adobe.xmp"))
    gdal = parse_gdal_metadata(exif.get(42112) if exif else None)

    md.make = _text(exif.get(271)) or xmp.get("tiff:Make") or gdal.get("EXIF_Make")
    md.model = _text(exif.get(272)) or xmp.get("tiff:Model") or gdal.get("EXIF_Model")
    md.focal_mm = _num(exif_ifd.get(37386)) or _num(gdal.get("EXIF_FocalLength")) or _num(xmp.get("exif:FocalLength"))
    md.focal_35mm = _num(exif_ifd.get(41989)) or _num(gdal.get("EXIF_FocalLengthIn35mmFilm"))
    orient = _num(exif.get(274)) if exif else None
    md.orientation = int(orient) if orient and 1 <= orient <= 8 else 1
    md.capture_time = (exif_datetime(exif_ifd.get(36867), exif_ifd.get(36881))
                       or exif_datetime(gdal.get("EXIF_DateTimeOriginal"))
                       or exif_datetime(xmp.get("exif:DateTimeOriginal"))
                       or exif_datetime(xmp.get("xmp:CreateDate"))
                       or exif_datetime(exif.get(306) if exif else None))

    candidates: list[tuple[str, float | None, float | None, float | None]] = []
    if gps_ifd:
        alt = _num(gps_ifd.get(6))
        if alt is not None and gps_ifd.get(5) in (1, b"\x01", "\x01", "1"):  # 1 = below sea level
            alt = -abs(alt)
        candidates.append(("EXIF GPS", _signed(_dms(gps_ifd.get(2)), gps_ifd.get(1), "S"),
                           _signed(_dms(gps_ifd.get(4)), gps_ifd.get(3), "W"), alt))
    xlat = _xmp_coord(xmp.get("drone-dji:GpsLatitude") or xmp.get("exif:GPSLatitude"))
    xlon = _xmp_coord(xmp.get("drone-dji:GpsLongitude") or xmp.get("drone-dji:GpsLongtitude")
                      or xmp.get("exif:GPSLongitude"))
    if xlat is not None or xlon is not None:
        candidates.append(("DJI XMP", xlat, xlon, _num(xmp.get("drone-dji:AbsoluteAltitude"))))
    if "EXIF_GPSLatitude" in gdal:
        galt = _num(gdal.get("EXIF_GPSAltitude"))
        if galt is not None and _num(gdal.get("EXIF_GPSAltitudeRef")) == 1:
            galt = -galt
        candidates.append(("GDAL EXIF metadata",
                           _signed(_dms(gdal.get("EXIF_GPSLatitude")), gdal.get("EXIF_GPSLatitudeRef"), "S"),
                           _signed(_dms(gdal.get("EXIF_GPSLongitude")), gdal.get("EXIF_GPSLongitudeRef"), "W"), galt))

    for source, lat, lon, alt in candidates:
        if not _check_position(lat, lon, source, md.warnings):
            continue
        agl = _num(xmp.get("drone-dji:RelativeAltitude"))
        gimbal_yaw = _num(xmp.get("drone-dji:GimbalYawDegree"))
        flight_yaw = _num(xmp.get("drone-dji:FlightYawDegree"))
        img_dir = _num(gps_ifd.get(17)) if gps_ifd else None
        yaw = next((y for y in (gimbal_yaw, flight_yaw, img_dir) if y is not None and math.isfinite(y)), None)
        md.gps = {"lat": float(lat), "lon": float(lon),
                  "alt_msl": alt if alt is not None and math.isfinite(alt) else None,
                  "agl": agl if agl is not None and math.isfinite(agl) else None,
                  "yaw": yaw, "gimbal_yaw": gimbal_yaw, "flight_yaw": flight_yaw,
                  "gimbal_pitch": _num(xmp.get("drone-dji:GimbalPitchDegree")), "source": source}
        break
    return md


#: EXIF orientation -> rotation (degrees clockwise) of the displayed image top relative to the sensor top.
_ORIENT_TURN = {1: 0.0, 2: 0.0, 3: 180.0, 4: 180.0, 5: -90.0, 6: -90.0, 7: 90.0, 8: 90.0}


def frame_footprint(md: FrameMetadata, width: int, height: int) -> tuple[GeoRef | None, float | None,
                                                                           dict[str, Any], list[Message]]:
    """Approximate footprint of a frame (``width``x``height`` as displayed, after EXIF orientation).

    Returns (georef or None, GSD m or None, camera description for meta, warnings).
    """
    warnings: list[Message] = []
    spec = lookup_camera(md.model, md.make)
    camera: dict[str, Any] = {"make": md.make, "model": md.model, "focal_mm": md.focal_mm,
                              "focal_35mm": md.focal_35mm, "sensor_width_mm": None, "sensor_source": None}
    gps = md.gps
    if gps is None:
        return None, None, camera, warnings
    agl = gps.get("agl")
    if agl is None:
        warnings.append(message(N_("no height above ground in the metadata (EXIF altitude is above sea level): the "
                                   "frame's footprint cannot be sized; only its GPS point is shown. Place it by hand "
                                   "for a footprint")))
        return None, None, camera, warnings
    if not 0.5 <= agl <= MAX_AGL_M:
        warnings.append(message(N_("height above ground {agl} m is implausible; footprint not computed (GPS point "
                                   "kept)"), agl=f"{agl:g}"))
        return None, None, camera, warnings
    focal = md.focal_mm if md.focal_mm and md.focal_mm > 0 else (spec.focal_mm if spec else None)
    sensor_w: float | None = None
    if spec is not None and focal:
        sensor_w, camera["sensor_source"] = spec.sensor_width_mm, f"camera table: {spec.name}"
        nat_w, nat_h = spec.native_px
        if abs(max(width, height) / min(width, height) - nat_w / nat_h) > 0.03 * nat_w / nat_h:
            warnings.append(message(N_("image aspect {width}x{height} differs from the {camera}'s {nat_w}x{nat_h}: "
                                       "it may be cropped, so the footprint scale is uncertain"),
                                    width=width, height=height, camera=spec.name, nat_w=nat_w, nat_h=nat_h))
    elif md.focal_35mm and md.focal_35mm > 0:
        sensor_w, focal = sensor_width_from_35mm(focal, md.focal_35mm, width, height)
        camera["sensor_source"] = "EXIF FocalLengthIn35mmFilm"
    if sensor_w is None or not focal:
        cam = (message(N_("camera {model!r} is not in the camera table"), model=md.model) if md.model
               else message(N_("the camera model is unknown")))
        warnings.append(message(N_("{camera} and the frame has no 35 mm focal length: the footprint cannot be sized; "
                                   "only the GPS point is shown"), camera=cam))
        return None, None, camera, warnings
    camera["sensor_width_mm"], camera["focal_mm"] = sensor_w, focal

    lat, lon = gps["lat"], gps["lon"]
    tilt = 0.0 if gps.get("gimbal_pitch") is None else abs(90.0 + float(gps["gimbal_pitch"]))
    yaw = gps.get("yaw")
    notes = []
    if yaw is None:
        notes.append("heading unknown: drawn north-up")
        yaw = 0.0
    if tilt > MAX_TILT_DEG:
        warnings.append(message(N_("camera tilted {tilt}° from nadir (oblique view): no footprint computed; only "
                                   "the GPS point is shown"), tilt=f"{tilt:.0f}"))
        return None, None, camera, warnings
    slant = agl
    if tilt > OBLIQUE_TILT_DEG:
        # Centre on where the optical axis meets flat ground, sized at the slant range: a rough nadir equivalent.
        shift = agl * math.tan(math.radians(tilt))
        lon, lat, _back = _GEOD.fwd(lon, lat, yaw, shift)
        slant = agl / math.cos(math.radians(tilt))
        warnings.append(message(N_("camera tilted {tilt}° from nadir: the footprint is a rough nadir approximation "
                                   "centred {shift} m ahead of the drone"), tilt=f"{tilt:.0f}", shift=f"{shift:.0f}"))
        notes.append(f"oblique {tilt:.0f}° view")
    if md.orientation in (2, 4, 5, 7):
        warnings.append(message(N_("mirrored EXIF orientation: the footprint's orientation may be mirrored")))
    try:
        georef = geo.footprint_georef(lat, lon, slant, focal, sensor_w, width, height,
                                      yaw_deg=(yaw + _ORIENT_TURN[md.orientation]) % 360.0)
    except GeoreferenceError as exc:
        warnings.append(message(N_("footprint not computed: {message}"), message=exc))
        return None, None, camera, warnings
    if notes:
        georef = GeoRef(georef.crs, georef.transform, georef.method, True, georef.note + "; " + "; ".join(notes))
    gsd = sensor_w * slant / (focal * max(width, height))
    return georef, gsd, camera, warnings
