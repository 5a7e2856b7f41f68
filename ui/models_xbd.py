"""The Evaluate tab's xBD mode: a labelled xBD folder (server folder or uploaded zip) scored as a background job,
its building- and tile-level AUROCs with the building ROC curve, and the rows of the model cards' xBD table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from core.i18n import N_, _
from core.learn import jobs
from core.server_files import xbd_folders
from ui import model_cache, shell
from ui.jobs import start_job
from ui.markdown_text import plain

TILE_HELP = N_("Tiles of this size cut from each post image; a tile holding buildings counts as damaged when any of "
             "them is. The tile AUROC ranks tiles by their mean heatmap.")
#: the model card's xBD table shows AUROCs with three decimals, as the jobs panel does
CARD_COLUMNS = {"building AUROC": st.column_config.NumberColumn(format="%.3f"),
                "tile AUROC": st.column_config.NumberColumn(format="%.3f")}
BUILDING_HELP = N_("Damaged (minor, major, destroyed) vs no-damage buildings, each scored by the mean calibrated "
                 "heatmap inside its post-event polygon; un-classified buildings are left out.")


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"


def unlabelled_note(xbd: xbd_folders.XbdFolder) -> dict[str, Any] | str:
    """The job's language-free note on post images without labels ("" when all have them), put in words by
    :func:`note_text` when the result is shown."""
    if not xbd.unlabelled:
        return ""
    return {"code": "unlabelled", "n": len(xbd.unlabelled), "posts": xbd.posts, "names": list(xbd.unlabelled[:3])}


def note_text(note: object) -> str:
    """An xBD job's note in the language in use (a note stored as a sentence by an older version: as it is)."""
    if isinstance(note, dict) and note.get("code") == "unlabelled":
        names = [str(n) for n in note.get("names") or []]
        n = note.get("n", len(names))
        listed = ", ".join(names) + (" …" if isinstance(n, int) and n > len(names) else "")
        return _("{n} of {posts} post images have no label JSON ({names}): they add no buildings, only their image "
                 "count").format(n=n, posts=note.get("posts", "?"), names=listed)
    return str(note or "")


def evaluate_form(ctx: shell.Context, jr: jobs.JobRunner, labels: dict[str, str]) -> None:
    """The xBD evaluation form; on submit the folder (or zip) is checked and the job started."""
    with st.form("evaluate_xbd_form"):
        key = st.selectbox(_("Model"), list(labels), format_func=labels.get)
        folder = st.text_input(_("xBD folder on the server"), max_chars=1000, placeholder="/data/xbd/harvey",
                               help=_("The folder holding images/ (…_post_disaster.png) and labels/ "
                                      "(…_post_disaster.json), as xView2 distributes them."))
        upload = st.file_uploader(_("…or a .zip of such a folder"), ["zip"])
        tile = st.number_input(_("Tile size for the tile-level AUROC (px)"), 32, 4096, 256, step=32, help=_(TILE_HELP))
        go_eval = st.form_submit_button(_("Start xBD evaluation"), type="primary")
    if not go_eval:
        return
    typed = (folder or "").strip()
    if typed and upload is not None:
        st.error(_("Give one xBD folder: a server folder or a zip, not both."))
        return
    if not typed and upload is None:
        st.error(_("Give an xBD folder: name one on the server or upload a .zip of it ({layout}).").format(
            layout=xbd_folders.XBD_LAYOUT))
        return
    def start(made: list[Path]) -> str:
        if typed:
            xbd = xbd_folders.check_xbd_folder(typed)
        else:
            staged, xbd = xbd_folders.stage_xbd_upload(ctx.ws, upload)
            made.append(staged)
        det = model_cache.get_detector(key, ctx.device)
        jid = jr.start_xbd_evaluation(xbd.root, model_path=key or None, device=ctx.device, tile=int(tile),
                                      detector=det, note=unlabelled_note(xbd))
        return _("xBD evaluation job #{id} started ({n} post images).").format(id=jid, n=xbd.posts)

    start_job(_("xBD evaluation"), start)


def job_result(res: dict[str, Any]) -> None:
    """A finished xBD evaluation in the jobs panel: both AUROCs, the building ROC curve and the counts."""
    c = st.columns(2)
    c[0].metric(_("Building AUROC"), _fmt(res.get("building_auroc")), help=_(BUILDING_HELP))
    c[1].metric(_("Tile AUROC"), _fmt(res.get("tile_auroc")), help=_(TILE_HELP))
    if res.get("building_auroc") is not None and res.get("fpr"):
        fig = go.Figure([go.Scatter(x=res["fpr"], y=res["tpr"], mode="lines", name=_("buildings")),
                         go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=_("chance"),
                                    line=dict(dash="dash", color="gray"))])
        fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=_("false positive rate"),
                          yaxis_title=_("true positive rate"),
                          title=_("Building ROC · AUROC {auroc}").format(auroc=_fmt(res["building_auroc"])))
        st.plotly_chart(fig, width="stretch")
    else:
        st.info(_("No building ROC: the graded buildings are all damaged or all undamaged, so they cannot be ranked."))
    st.caption(_("{damaged} damaged vs {undamaged} undamaged buildings in {images} post images · {tiles} tiles of "
                 "{tile} px, {damaged_tiles} with damage · folder {folder} · model {model}").format(
                     damaged=res.get("n_damaged"), undamaged=res.get("n_undamaged"), images=res.get("images"),
                     tiles=res.get("n_tiles"), tile=res.get("tile"), damaged_tiles=res.get("n_damaged_tiles"),
                     folder=Path(str(res.get("folder", "?"))).name, model=res.get("model", {}).get("name", "?")))
    if res.get("note"):
        st.caption(plain(note_text(res["note"])))


def is_xbd(job: dict[str, Any]) -> bool:
    """Whether an evaluation job ran on an xBD folder."""
    return bool((job.get("params") or {}).get("xbd"))


def card_rows(evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The model card's xBD table: a row per finished xBD evaluation (``jobs.model_evaluations``)."""
    rows = []
    for j in evaluations:
        r = j["result"]
        if r.get("data") != "xbd":
            continue
        rows.append({"when": j["finished_at"][:16].replace("T", " "), "folder": Path(str(r.get("folder", ""))).name,
                     "building AUROC": r.get("building_auroc"), "tile AUROC": r.get("tile_auroc"),
                     "damaged": r.get("n_damaged"), "undamaged": r.get("n_undamaged"), "images": r.get("images"),
                     "tiles": r.get("n_tiles"), "tile px": r.get("tile")})
    return rows
