"""Analyst labels of buildings: damage levels shared by every grading scale, a label as stored (damaged /
not-damaged, or an EMS grade key), and a labels CSV read (``building_id,damaged`` or ``building_id,grade``).

The few-label calibration (:mod:`core.buildings.calibrate`) fits on these labels; the workspace stores them
(:mod:`core.store.buildings`) and the CLI reads them from a file (``buildings calibrate --labels``).
"""

from __future__ import annotations

import csv
from pathlib import Path

from core.detection.grading import SCALES, get_scale
from core.errors import InputError
from core.i18n import N_, _

#: Grade levels used across scales: 0 no damage, 1 possibly / minor, 2 damaged, 3 destroyed.
LEVEL_NAMES = ("no damage", "possibly damaged", "damaged", "destroyed")
_BINARY_TRUE = {"1", "true", "yes", "y", "damaged", "damage", "t"}
_BINARY_FALSE = {"0", "false", "no", "n", "not damaged", "not-damaged", "undamaged", "intact", "f", "none"}


def grade_level(key: str) -> int | None:
    """Level 0..3 of a grade key or label of any scale (None for "not analysed" / unknown)."""
    k = key.strip().lower().replace("_", "-")
    for sc in SCALES.values():
        if k in (sc.no_damage.key, sc.no_damage.label.lower()):
            return 0
        for i, g in enumerate(sc.damage):
            if k in (g.key, g.label.lower()):
                if i == len(sc.damage) - 1:
                    return 3
                return 1 if i == 0 else 2
    return None


def level_grade(level: int, scale: str) -> str:
    """The grade key of ``scale`` for level 0..3."""
    sc = get_scale(scale)
    if level <= 0:
        return sc.no_damage.key
    if level == 1:
        return sc.damage[0].key
    if level == 2:
        return sc.damage[-2].key
    return sc.damage[-1].key


def parse_label(value: object) -> str:
    """A label as stored: "damaged", "not-damaged" or a level name's grade key on EMS (:class:`InputError` else)."""
    text = str(value if value is not None else "").strip().lower()
    if text in _BINARY_TRUE:
        return "damaged"
    if text in _BINARY_FALSE:
        return "not-damaged"
    lvl = grade_level(text)
    if lvl is None:
        raise InputError(_("label {value!r} is neither damaged / not damaged (1/0, yes/no) nor a damage grade "
                           "(destroyed, damaged, possibly damaged, no visible damage, or an xView2 / UNOSAT grade)")
                         .format(value=value))
    return level_grade(lvl, "copernicus-ems")


#: How the two binary labels read (a grade label reads as its grade).
LABEL_WORDS = {"damaged": N_("damaged"), "not-damaged": N_("not damaged")}


def label_text(label: str | None) -> str:
    """A stored label as a person reads it, in the current language ("" for none): damaged / not damaged, or the
    EMS grade it names."""
    if not label:
        return ""
    if label in LABEL_WORDS:
        return _(LABEL_WORDS[label])
    try:
        return _(get_scale("copernicus-ems").get(label).label)
    except InputError:  # a label stored by another version reads as stored
        return label


def label_damaged(label: str) -> bool:
    """Whether a stored label means damaged or worse."""
    if label == "damaged":
        return True
    if label == "not-damaged":
        return False
    return (grade_level(label) or 0) >= 2


def read_labels_csv(path: str | Path) -> dict[str, str]:
    """``building_id -> label`` from a CSV with columns ``building_id,damaged`` or ``building_id,grade`` (other
    columns ignored; a row whose label is left empty is not a label, as in the template of
    :func:`core.buildings.suggest.write_label_template`)."""
    from core.report.tables import FORMULA_PREFIXES

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(_("labels file {path} not found").format(path=p)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(_("labels file {name} cannot be read as UTF-8 text ({exc})").format(name=p.name, exc=exc)) \
            from exc
    rows = list(csv.DictReader(text.splitlines()))
    cols = {c.strip().lower(): c for c in (rows[0].keys() if rows else []) if c}
    if "building_id" not in cols or not ({"damaged", "grade"} & set(cols)):
        raise InputError(_("labels file {name} needs the columns building_id,damaged or building_id,grade "
                           "(found: {found})").format(name=p.name, found=", ".join(cols) or _("no header")))
    col = cols.get("grade") or cols["damaged"]
    out: dict[str, str] = {}
    for n, r in enumerate(rows, start=2):
        bid = str(r.get(cols["building_id"]) or "").strip()
        val = str(r.get(col) or "").strip()
        if not val:
            continue  # not labelled (yet)
        if not bid:
            raise InputError(_("labels file {name}, line {n}: no building_id").format(name=p.name, n=n))
        if bid.startswith("'") and bid[1:].startswith(FORMULA_PREFIXES):
            bid = bid[1:]  # written by our CSV writers with the quote that keeps spreadsheets from evaluating it
        try:
            out[bid] = parse_label(val)
        except InputError as exc:
            raise InputError(_("labels file {name}, line {n}: {exc}").format(name=p.name, n=n, exc=exc)) from exc
    if not out:
        raise InputError(_("labels file {name} has no labels: fill the damaged (or grade) column of some rows")
                         .format(name=p.name))
    return out
