"""Which pre-event image goes with which post-event image.

Rules, per post image (see :func:`pair_report`):

1. **overlap** - both images are georeferenced (any CRS, raster or approximate georefs): the pre whose WGS84
   footprint covers the largest share of the post footprint, if that share is at least ``min_overlap`` (30 % by
   default). Among pres that qualify, one whose name also matches (rule 2) wins over a slightly larger overlap, so
   approximately placed images of one series stay together. Areas are geodesic (m²), never square degrees.
2. **name** - when the post or the candidate pre has no georeference: xBD ``<id>_pre_disaster`` /
   ``<id>_post_disaster``, or file stems that are equal once a ``pre``/``post``/``before``/``after`` token is
   removed (``0_pre.tif`` / ``0_post.tif``, ``site3-before.jpg`` / ``site3-after.jpg``).

Two georeferenced images whose footprints do not overlap enough are never paired by name: geography wins. A post
without a pre is simply absent from :func:`pair_inputs`; :func:`pair_report` says why, so the UI can show and edit
the pairing, and :func:`check_pair` describes a pair the analyst chose by hand.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import MultiPolygon, Polygon

from core.errors import CoreError
from core.geo import georef as geo
from core.i18n import _
from core.types import Scene

MIN_OVERLAP = 0.30  #: smallest share of the post footprint a pre must cover to be paired by overlap
_NAME_TIE = 0.02  #: a name-matching pre wins over one with up to this much more overlap
_PHASE = re.compile(r"(?<![a-z0-9])(pre|post|before|after)(?:[_\-. ]?(?:disaster|event))?(?![a-z0-9])",
                    re.IGNORECASE)
_PRE_WORDS = {"pre", "before"}


@dataclass
class PairInfo:
    """How one post image was (or was not) paired: the UI shows it and lets the analyst change it."""

    post: str
    pre: str | None
    rule: str | None  #: "overlap" | "name" | "manual" | None (unpaired)
    overlap: float | None = None  #: share (0..1) of the post footprint covered by the pre, when both have georefs
    note: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)  #: [{pre, overlap, name_match}], best first

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dataclasses.asdict(self)


@dataclass
class _Info:
    path: str
    footprint: Polygon | None
    area_m2: float
    error: str | None = None


def name_key(path: str | Path) -> tuple[str, str | None]:
    """(stem without its pre/post token, normalised; the token's phase "pre"/"post" or None).

    ``hurricane-harvey_00000221_post_disaster.png`` -> (``hurricane_harvey_00000221``, "post");
    ``0_pre.tif`` -> (``0``, "pre"); ``tile_31500-5137.tif`` -> (``tile_31500_5137``, None).
    """
    stem = Path(path).stem.lower()
    matches = list(_PHASE.finditer(stem))
    phase = None
    if matches:
        phase = "pre" if matches[-1].group(1).lower() in _PRE_WORDS else "post"
        stem = _PHASE.sub(" ", stem)
    return re.sub(r"[\s_\-.]+", "_", stem).strip("_"), phase


def names_match(post: str | Path, pre: str | Path) -> bool:
    """True when the two file names are the same stem with post/after vs pre/before tokens."""
    kp, php = name_key(post)
    kq, phq = name_key(pre)
    return bool(kp) and kp == kq and php != "pre" and phq == "pre"


def _footprint(scene: Scene) -> Polygon | None:
    if scene.georef is None:
        return None
    lon, lat = geo.pixel_to_lonlat(scene.georef, *geo.edge_pixels(scene.width, scene.height, 11))
    poly = Polygon(np.column_stack([lon, lat]))
    if not poly.is_valid:
        poly = poly.buffer(0)
    return poly if not poly.is_empty else None


def _area_m2(geom: Any) -> float:
    if geom is None or geom.is_empty:
        return 0.0
    parts = geom.geoms if isinstance(geom, MultiPolygon) else [geom]
    total = 0.0
    for p in parts:
        if isinstance(p, Polygon) and not p.is_empty:
            total += geo.polygon_area_m2(list(p.exterior.coords))
            total -= sum(geo.polygon_area_m2(list(r.coords)) for r in p.interiors)
    return max(total, 0.0)


def _inspect(path: str) -> _Info:
    from core.imagery.reader import (
        open_scene,  # local import: core.imagery.reader is heavy and imports this package's peers
    )

    try:
        scene = open_scene(path)
    except CoreError as exc:
        return _Info(path, None, 0.0, error=str(exc))
    try:
        fp = _footprint(scene)
    except CoreError as exc:
        return _Info(path, None, 0.0, error=str(exc))
    finally:
        scene.close()
    return _Info(path, fp, _area_m2(fp))


def _overlap(post: _Info, pre: _Info) -> float | None:
    if post.footprint is None or pre.footprint is None or post.area_m2 <= 0:
        return None
    if not post.footprint.intersects(pre.footprint):
        return 0.0
    return min(1.0, _area_m2(post.footprint.intersection(pre.footprint)) / post.area_m2)


def _decide(post: _Info, pres: list[_Info], min_overlap: float) -> PairInfo:
    cands = []
    for q in pres:
        if q.error is not None:
            continue
        ov = _overlap(post, q)
        cands.append({"pre": q.path, "overlap": ov, "name_match": names_match(post.path, q.path)})
    cands.sort(key=lambda c: (-(c["overlap"] if c["overlap"] is not None else -1), not c["name_match"], c["pre"]))
    info = PairInfo(post=post.path, pre=None, rule=None, candidates=cands)
    if post.error is not None:
        info.note = _("post image cannot be read: {error}").format(error=post.error)
        return info
    geo_ok = [c for c in cands if c["overlap"] is not None and c["overlap"] >= min_overlap]
    if geo_ok:
        best = geo_ok[0]
        named = [c for c in geo_ok if c["name_match"] and c["overlap"] >= best["overlap"] - _NAME_TIE]
        pick = named[0] if named else best
        info.pre, info.rule, info.overlap = pick["pre"], "overlap", pick["overlap"]
        info.note = (_("footprints overlap {pct}% of the post image (file names agree)") if pick["name_match"]
                     else _("footprints overlap {pct}% of the post image")).format(pct=f"{100 * pick['overlap']:.0f}")
        return info
    by_name = [c for c in cands if c["name_match"]]
    free = [c for c in by_name if c["overlap"] is None]  # at least one side without georef
    if free:
        info.pre, info.rule = free[0]["pre"], "name"
        info.note = (_("paired by file name (the post image has no georeference)") if post.footprint is None
                     else _("paired by file name (the pre image has no georeference)"))
        return info
    geo_cands = [c for c in cands if c["overlap"] is not None]
    if by_name:
        c = by_name[0]
        info.note = _("{name} has a matching name but the footprints overlap only {pct}% (< {min}%); not paired - "
                      "pair it by hand if the georeferences are wrong").format(
                          name=Path(c["pre"]).name, pct=f"{100 * c['overlap']:.0f}", min=f"{100 * min_overlap:.0f}")
    elif geo_cands:
        c = geo_cands[0]
        info.note = _("no pre-event image covers at least {min}% of it (best: {name}, {pct}%)").format(
            min=f"{100 * min_overlap:.0f}", name=Path(c["pre"]).name, pct=f"{100 * c['overlap']:.0f}")
    elif post.footprint is None:
        info.note = _("no georeference and no pre-event image with a matching name (…_pre / …_post, before / "
                      "after)")
    else:
        info.note = _("no georeferenced pre-event image and no pre-event image with a matching name")
    return info


def pair_report(posts: list[str], pres: list[str], *, min_overlap: float = MIN_OVERLAP) -> list[PairInfo]:
    """One :class:`PairInfo` per post image (in order): the chosen pre, the rule, the overlap and the candidates.

    Each file is opened once; unreadable files are reported in the notes, never raised.
    """
    pre_infos = [_inspect(str(p)) for p in pres]
    return [_decide(_inspect(str(p)), pre_infos, min_overlap) for p in posts]


def pair_inputs(posts: list[str], pres: list[str], *, min_overlap: float = MIN_OVERLAP) -> dict[str, str]:
    """Post path -> pre path for every post image that has a pre (see the module docstring for the rules)."""
    return {r.post: r.pre for r in pair_report(posts, pres, min_overlap=min_overlap) if r.pre is not None}


def check_pair(post: str, pre: str) -> PairInfo:
    """Describe a pair chosen by the analyst (rule "manual"), with the footprint overlap when both have georefs.

    Raises :class:`~core.errors.InputError` when either image cannot be read.
    """
    from core.imagery.reader import open_scene

    for p in (post, pre):
        open_scene(p).close()  # raises the reader's own message
    a, b = _inspect(str(post)), _inspect(str(pre))
    ov = _overlap(a, b)
    if ov is None:
        note = _("paired by hand")
    elif ov == 0.0:
        note = _("paired by hand; the footprints do not overlap at all: check the georeferences")
    else:
        note = _("paired by hand; footprints overlap {pct}% of the post image").format(pct=f"{100 * ov:.0f}")
    return PairInfo(post=str(post), pre=str(pre), rule="manual", overlap=ov, note=note,
                    candidates=[{"pre": str(pre), "overlap": ov, "name_match": names_match(post, pre)}])
