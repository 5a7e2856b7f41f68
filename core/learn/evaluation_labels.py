"""What evaluation results are called where a person reads them (CLI ``evaluate``, the Models page): labels for the
result keys and the scored unit, in the language in use. The keys themselves (``--json``, stored job results,
checkpoints) stay English and stable."""

from __future__ import annotations

import re

from core.i18n import N_, _

#: The sections of ``evaluate``'s results, as headed when printed.
EVALUATE_SECTIONS: dict[str, str] = {"images": N_("Normal vs anomalous images"), "xbd": N_("xBD folder")}
#: What ``evaluate`` prints for each key of its results (``--json`` keeps the keys, which stay English and stable).
EVALUATE_LABELS: dict[str, str] = {
    "images": N_("post images"), "auroc": N_("AUROC"), "n_normal": N_("normal"), "n_anomalous": N_("anomalous"),
    "unit": N_("scored unit"),
    "skipped": N_("skipped"), "building_auroc": N_("building AUROC"), "n_damaged": N_("damaged buildings"),
    "n_undamaged": N_("undamaged buildings"), "tile_auroc": N_("tile AUROC"), "n_tiles": N_("tiles"),
    "n_damaged_tiles": N_("tiles with damage"), "images_with_both_classes": N_("images with both classes"),
    "building_auroc_scene_median": N_("building AUROC of the image median alone"),
    "building_auroc_within_scene": N_("building AUROC within each image"),
}


def evaluation_unit(unit: object) -> str:
    """The scored unit of an evaluation (``"image"`` or ``"patch 128px"`` as stored), in the language in use."""
    text = str(unit or "")
    if text == "image":
        return _("image")
    m = re.fullmatch(r"patch (\d+)px", text)
    return _("patch of {px} px").format(px=m.group(1)) if m else text


#: Evaluation figures the bundled models' checkpoints carry (``meta["evaluation"]``), as shown on the model card.
STORED_EVALUATION_LABELS: dict[str, str] = {
    "aider_flood_vs_fire_auroc (separate model, same recipe)":
        N_("AIDER flood vs fire AUROC (separate model, same recipe)"),
    "joplin_chips_patch_auroc": N_("Joplin chips, patch AUROC"),
    "xbd_harvey_building_auroc": N_("xBD Harvey, building AUROC"),
    "xbd_harvey_tile_auroc": N_("xBD Harvey, tile AUROC"),
}


def evaluation_label(key: str) -> str:
    """The label of an evaluation result key (either table above), or the key itself when unknown."""
    known = EVALUATE_LABELS.get(key) or STORED_EVALUATION_LABELS.get(key)
    return _(known) if known else key


