"""``python -m core place``: put an analysed image that has no georeference on the earth.

A photo without GPS, or a frame whose GPS lacked the height or camera data for a footprint, is analysed but has
no location: its findings carry no coordinates or areas and the map cannot show it. Placing it (by its centre,
ground sample distance and heading, or by the WGS84 bounds of a north-up image) writes the location into its
heatmap GeoTIFFs and extracts its findings again with coordinates, MGRS and areas; reviews are kept.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import InputError
from core.i18n import _


def _floats(text: str, n: int, what: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise InputError(_("{what} takes {n} numbers separated by commas, got {text!r}").format(
                             what=what, n=n, text=text))
    return vals


def add_place(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the place sub-command."""
    p = sub.add_parser("place", help=_("place an analysed image without georeference (centre+GSD or bounds)"))
    p.add_argument("--analysis", type=int, required=True, metavar="ID", help=_("analysis id in the workspace"))
    p.add_argument("--image", required=True, metavar="NAME", help=_("the image's name in that analysis"))
    p.add_argument("--center", metavar="LAT,LON", help=_("centre of the image, WGS84 degrees (write "
                                                          "--center=-33.9,151.2 when the first number is negative)"))
    p.add_argument("--gsd", type=float, help=_("ground sample distance, metres per pixel (with --center)"))
    p.add_argument("--yaw", type=float, default=0.0, help=_("heading of the image top, degrees from north"))
    p.add_argument("--bounds", metavar="W,S,E,N", help=_("WGS84 bounds of a north-up image instead of --center (write "
                                                         "--bounds=-94.5,37.06,-94.49,37.07 when W is negative)"))
    p.add_argument("--workspace", default=None, help=_("workspace folder (default: $BDA_WORKSPACE or the user's)"))


def cmd_place(a: argparse.Namespace) -> int:
    """Place the image and save its result; prints its new bounds and findings."""
    from core.detection.pipeline import place_result
    from core.geo import georef as geo
    from core.store import Workspace

    ws = Workspace(a.workspace)
    analysis = ws.get_analysis(a.analysis)
    results = {r.scene_name: r for r in ws.scene_results(analysis["id"])}
    r = results.get(a.image)
    if r is None or r.error:
        names = ", ".join(n for n, x in results.items() if not x.error) or _("none")
        raise InputError(_("analysis {id} has no analysed image {image!r} (its images: {names})").format(
                             id=analysis['id'], image=a.image, names=names))
    if r.georef is not None and r.georef.method != "user":
        raise InputError(_("{image} is already georeferenced ({method}, {crs}); only images without a location, or "
                           "placed by hand before, can be placed").format(
                             image=a.image, method=r.georef.method, crs=r.georef.crs))
    c = _floats(a.center, 2, "--center") if a.center else None
    b = _floats(a.bounds, 4, "--bounds") if a.bounds else None
    center = (c[0], c[1]) if c else None
    bounds = (b[0], b[1], b[2], b[3]) if b else None
    georef, how = geo.placement_georef(r.width, r.height, center=center, gsd_m=a.gsd, yaw_deg=a.yaw,
                                       bounds=bounds)
    r.meta["placement"] = how
    thr = float(r.meta.get("threshold") or (r.findings[0].threshold if r.findings else analysis["threshold"] or 1.0))
    placed = place_result(r, georef, analysis["model"], thr)
    ws.save_scene_result(analysis["id"], placed, input_name=a.image)
    w, s, e, n = placed.bounds_wgs84 or (float("nan"),) * 4
    print(_("placed {image}: W {w} S {s} E {e} N {n}; {count} findings with coordinates").format(
        image=a.image, w=f"{w:.6f}", s=f"{s:.6f}", e=f"{e:.6f}", n=f"{n:.6f}", count=len(placed.findings)),
        file=sys.stderr)
    return 0
