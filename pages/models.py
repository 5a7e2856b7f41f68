"""Models: model cards, training and evaluation (image sets or an xBD folder) as background jobs (live loss curve,
ROC), checkpoint upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from core.assets import bundled_models
from core.detection.detector import model_family
from core.errors import CoreError
from core.i18n import N_, _
from core.learn import jobs, model_import
from core.learn.evaluation_labels import evaluation_label, evaluation_unit
from core.learn.samples import IMAGE_EXTS
from core.learn.training import TrainConfig
from core.models.checkpoint import file_sha256, read_checkpoint
from core.models.registry import arch_info, list_archs
from core.server_files import typed_paths
from core.store.job_uploads import save_job_uploads
from ui import i18n, model_cache, models_train, models_xbd, shell
from ui.jobs import start_job
from ui.markdown_text import in_code, plain

POLL_S = 2.0  #: refresh period of the jobs panel while a job runs
UPLOAD_TYPES = sorted({e.lstrip(".") for e in IMAGE_EXTS} | {"zip"})
# a page script runs on every rerun: its module-level strings are translated to the session's language each time
EVAL_MODES = {"images": _("Normal vs anomalous images"), "xbd": _("xBD folder (images/ + labels/)")}
SERVER_HELP = _("A folder on the server (read with its subfolders), one image file, or a glob such as "
                "/data/flood/**/*.tif. Must lie inside the folders named below when the administrator set them.")


@st.cache_data(show_spinner=False, max_entries=64)
def _checkpoint_meta(path: str, mtime: float) -> tuple[dict[str, Any], str]:
    del mtime  # cache key only
    return read_checkpoint(path)[1], file_sha256(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _card_path(path: Path) -> Path | None:
    """The bundled model's markdown card: ``<stem>.md`` beside it, else the folder's only ``.md``."""
    own = path.with_suffix(".md")
    if own.is_file():
        return own
    mds = sorted(path.parent.glob("*.md"))
    return mds[0] if len(mds) == 1 else None


def _num(v: Any, spec: str = ".3f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) else "n/a"


def _card(title: str, info: dict[str, Any], sha: str, path: Path, ws, *, markdown: Path | None = None) -> None:
    with st.expander(title, expanded=markdown is not None):
        arch = str(info.get("arch", "?"))
        c = st.columns(4)
        c[0].metric(_("Family"), _(model_family(arch)), help=_("Architecture `{arch}`").format(arch=arch))
        c[1].metric(_("Input size"), f"{info.get('input_size', '?')} px")
        cal = info.get("calibration") or {}
        c[2].metric(_("Default threshold"), _num(cal.get("threshold", info.get("threshold")), ".2f"),
                    help=_("Calibrated units: 1 = the 99th percentile of the model's normal pixels."))
        c[3].metric(_("Calibration images"), str(cal.get("n_images", "?")),
                    help=_("Held-out normal images whose scores set the calibration and default threshold."))
        tr = info.get("training") or {}
        normal, anomalies = tr.get("normal") or {}, tr.get("anomalies") or {}
        epochs, final = tr.get("epochs", "?"), tr.get("final_loss")
        bank = tr.get("feature_bank")
        if isinstance(bank, dict):  # feature matching: fitted, not trained
            st.text(_("Architecture: {arch}. Fitted to {normal} normal file(s): a feature bank of {bank} from {cells} "
                      "normal cells; a location's anomaly is its mean distance to the {k} nearest.").format(
                          arch=arch, normal=normal.get("files", "?"), bank=bank.get("bank", "?"),
                          cells=bank.get("cells", "?"), k=bank.get("neighbours", 1)))
        else:
            synthetic = "" if anomalies.get("files") else _(" (synthetic confetti anomalies)")
            st.text(_("Architecture: {arch}. Training data: {normal} normal file(s), {anomalies} labelled anomaly "
                      "file(s){synthetic}; {epochs} epoch(s), final loss {loss}{early}.").format(
                          arch=arch, normal=normal.get("files", "?"), anomalies=anomalies.get("files", 0),
                          synthetic=synthetic, epochs=epochs, loss=_num(final, ".4f"),
                          early=_(", stopped early") if tr.get("stopped_early") else ""))
        done = jobs.model_evaluations(ws, sha)
        evals = [{"when": j["finished_at"][:16].replace("T", " "), "AUROC": j["result"].get("auroc"),
                  "normal": j["result"].get("n_normal"), "anomalous": j["result"].get("n_anomalous"),
                  "unit": evaluation_unit(j["result"].get("unit"))} for j in done if j["result"].get("data") != "xbd"]
        stored = info.get("evaluation") or {}
        if stored:
            evals.append({"when": _("in checkpoint"), **{k: v for k, v in stored.items()
                                                         if isinstance(v, (int, float, str))}})
        xbd = models_xbd.card_rows(done)
        if evals:
            st.dataframe(evals, hide_index=True, width="stretch", column_config={
                **{k: st.column_config.Column(evaluation_label(k)) for k in stored},
                **i18n.column_labels(["when", "normal", "anomalous", "unit"])})
        if xbd:
            st.caption(_("On xBD folders (building-level AUROC: damaged vs no-damage buildings):"))
            st.dataframe(xbd, hide_index=True, width="stretch", column_config={
                **i18n.column_labels(["when", "folder", "damaged", "undamaged", "images", "tiles", "tile px"]),
                **{k: st.column_config.NumberColumn(_(k), format="%.3f") for k in models_xbd.CARD_COLUMNS}})
        if not evals and not xbd:
            st.caption(_("Not evaluated yet: use the Evaluate tab."))
        st.caption(f"sha256 `{sha}` · `{in_code(path)}`")
        if markdown is not None:
            st.caption(_("Model card, as written with the model (English):"))
            with st.container(key=f"model_card_{path.stem}"):  # the card's own text is not translated
                st.markdown(markdown.read_text(encoding="utf-8"))


def _models_tab(ws) -> None:
    default = model_cache.default_model_path()
    if default is not None and default.is_file():
        try:
            meta, sha = _checkpoint_meta(str(default), _mtime(default))
            _card(_("Default model · {name}").format(name=meta.get("name", default.stem)),
                  model_import.model_info(meta, source="bundled"),
                  sha, default, ws, markdown=_card_path(default))
        except CoreError as exc:
            shell.show_error(exc, _("Default model"))
    else:
        st.info(_("The bundled default model is missing; train or upload one below."))
    for path in bundled_models():
        if default is not None and path.resolve() == default.resolve():
            continue
        try:
            meta, sha = _checkpoint_meta(str(path), _mtime(path))
            _card(_("Bundled · {name}").format(name=meta.get("name", path.stem)),
                  model_import.model_info(meta, source="bundled"), sha, path, ws,
                  markdown=_card_path(path))
        except CoreError as exc:
            shell.show_error(exc, _("Bundled model {name}").format(name=path.name))
    for m in ws.list_models():
        state = "" if m["exists"] else _(" · file missing")
        _card(f"#{m['id']} · {m['name']}{state}", m["info"], m["sha256"], Path(m["path"]), ws)


def _server_source(text: str, what: str) -> list[str]:
    """The typed server file, folder or glob as a job input, once checked (empty text: none)."""
    return [typed_paths.check_image_source(text, what)] if (text or "").strip() else []


def _staged(ws, kind: str, uploads: list, made: list[Path]) -> list[str]:
    """Uploaded files streamed into a fresh workspace folder (zips unpacked safely), as a job input; the folder is
    added to ``made`` so that a refused job can remove it."""
    dest = save_job_uploads(ws, kind, uploads)
    if dest is None:
        return []
    made.append(dest)
    return [str(dest)]


def _train_tab(ctx: shell.Context, jr: jobs.JobRunner) -> None:
    archs = list_archs()
    with st.form("train_form"):
        name = st.text_input(_("Model name"), max_chars=100, placeholder=_("e.g. joplin-pre-vgg16"))
        arch = st.selectbox(_("Architecture"), archs, index=archs.index("fcdd-vgg16") if "fcdd-vgg16" in archs else 0,
                            format_func=lambda a: f"{model_family(a)} · {a}",
                            help=_("Objective × trunk. fcdd-vgg16 is 'Deeper FCDD', the best backbone on AIDER in "
                                   "Yasuno et al. 2023; HSC, Deep SVDD and Deep SAD complete the one-class lineage; "
                                   "feature matching is fitted, not trained."))
        c = st.columns(4)
        epochs = c[0].number_input(_("Epochs"), 1, 1000, 10)
        size = c[1].number_input(_("Input size (px)"), 32, 1024, 224, step=8)
        steps = c[2].number_input(_("Steps per epoch"), 1, 10000, 50)
        batch = c[3].number_input(_("Batch size"), 2, 256, 16)
        normal_up = st.file_uploader(_("Normal images (pre-event / undamaged), or a .zip of them"), UPLOAD_TYPES,
                                     accept_multiple_files=True)
        normal_dir = st.text_input(_("…or a folder of normal images on the server"), help=SERVER_HELP)
        anom_up = st.file_uploader(_("Anomalies (optional, damaged examples), or a .zip"), UPLOAD_TYPES,
                                   accept_multiple_files=True,
                                   help=_("Without them, synthetic 'confetti' anomalies are used (FCDD, HSC, Deep "
                                          "SAD). Deep SVDD and feature matching learn from normal images only."))
        anom_dir = st.text_input(_("…or a folder of anomalies on the server"), help=SERVER_HELP)
        adv = models_train.advanced_fields()
        go_train = st.form_submit_button(_("Start training"), type="primary")
    def start(made: list[Path]) -> str | None:
        normal_srv = _server_source(normal_dir, N_("Normal images"))
        anom_srv = _server_source(anom_dir, N_("Anomalies"))
        if not normal_up and not normal_srv:
            st.error(_("Give normal images: upload them or name a folder on the server."))
            return None
        opts = models_train.train_options(adv, arch, has_anomalies=bool(anom_up or anom_srv))
        normal = _staged(ctx.ws, "train-normal", normal_up, made) + normal_srv
        anomalies = _staged(ctx.ws, "train-anomalies", anom_up, made) + anom_srv
        cfg = TrainConfig(arch=arch, normal=normal, anomalies=anomalies, input_size=int(size), epochs=int(epochs),
                          steps_per_epoch=int(steps), batch_size=int(batch), device=ctx.device,
                          name=name.strip(), **opts)
        jid = jr.start_training(cfg)
        return _("Training job #{id} started. Its progress shows above and survives leaving this page.").format(
            id=jid)

    if go_train:
        start_job(_("Training"), start)
    st.caption(typed_paths.allowed_note())
    info = arch_info(arch)
    st.caption(f"{info['description']} " + _("Receptive field {r} px, stride {j}.").format(r=info["rf"]["r"],
                                                                                          j=info["rf"]["j"]))


def _evaluate_tab(ctx: shell.Context, jr: jobs.JobRunner) -> None:
    choices = model_cache.model_choices(ctx.ws)
    if not choices:
        st.info(_("No model to evaluate yet."))
        return
    labels = {c.key: c.label for c in choices}
    mode = st.radio(_("Evaluate on"), list(EVAL_MODES), format_func=EVAL_MODES.get, horizontal=True,  # translated
                    help=_("An xBD folder gives building-level figures from its damage labels."))
    if mode == "xbd":
        models_xbd.evaluate_form(ctx, jr, labels)
        st.caption(typed_paths.allowed_note())
        return
    with st.form("evaluate_form"):
        key = st.selectbox(_("Model"), list(labels), format_func=labels.get)
        normal_up = st.file_uploader(_("Normal images, or a .zip"), UPLOAD_TYPES, accept_multiple_files=True)
        normal_dir = st.text_input(_("…or a server folder of normal images"), help=SERVER_HELP)
        anom_up = st.file_uploader(_("Anomalous images, or a .zip"), UPLOAD_TYPES, accept_multiple_files=True)
        anom_dir = st.text_input(_("…or a server folder of anomalous images"), help=SERVER_HELP)
        patch = st.number_input(_("Patch size for georeferenced rasters (0 = score whole images)"), 0, 4096, 0, step=32)
        go_eval = st.form_submit_button(_("Start evaluation"), type="primary")
    def start(made: list[Path]) -> str:
        normal_srv = _server_source(normal_dir, N_("Normal images"))
        anom_srv = _server_source(anom_dir, N_("Anomalous images"))
        normal = _staged(ctx.ws, "eval-normal", normal_up, made) + normal_srv
        anomalous = _staged(ctx.ws, "eval-anomalous", anom_up, made) + anom_srv
        det = model_cache.get_detector(key, ctx.device)
        jid = jr.start_evaluation(normal, anomalous, model_path=key or None, device=ctx.device,
                                  patch=int(patch) or None, detector=det)
        return _("Evaluation job #{id} started.").format(id=jid)

    if go_eval:
        start_job(_("Evaluation"), start)
    st.caption(typed_paths.allowed_note())


def _upload_tab(ctx: shell.Context) -> None:
    with st.form("checkpoint_form", clear_on_submit=True):
        up = st.file_uploader(_("Checkpoint (.pt) written by `python -m core train`"), ["pt", "pth"])
        name = st.text_input(_("Name (optional)"), max_chars=100)
        go_up = st.form_submit_button(_("Check and register"))
    if go_up:
        if up is None:
            st.error(_("Choose a checkpoint file first."))
            return
        try:
            up.seek(0)
            mid = model_import.import_checkpoint(ctx.ws, up.name, up, name=name,
                                         registered_by=ctx.user.name if ctx.user else None)
            st.success(_("Checkpoint registered as model #{id}; pick it in the sidebar.").format(id=mid))
        except CoreError as exc:
            shell.show_error(exc, _("Checkpoint refused"))


def _job_card(ws, jr: jobs.JobRunner, job: dict[str, Any]) -> None:
    with st.container(border=True):
        xbd = job["kind"] == jobs.EVALUATE and models_xbd.is_xbd(job)
        what = _("xBD evaluation") if xbd else {jobs.TRAIN: _("Training"), jobs.EVALUATE: _("Evaluation")}.get(
            job["kind"], job["kind"])
        st.markdown(_("**{what} job #{id}** · {status} · started {at} UTC").format(
            what=what, id=job["id"], status=_(str(job["status"])), at=job["created_at"][:19]))
        st.progress(float(job["progress"] or 0.0))
        if job["message"]:
            st.text(job["message"])
        if job["kind"] == jobs.TRAIN:
            pts = [e for e in job["log"] if "loss" in e and "epoch" in e]
            if pts:
                fig = go.Figure(go.Scatter(x=[e["epoch"] for e in pts], y=[e["loss"] for e in pts],
                                           mode="lines+markers", name=_("loss")))
                fig.update_layout(height=240, margin=dict(l=10, r=10, t=30, b=10), title=_("Training loss"),
                                  xaxis_title=_("epoch"), yaxis_title=_("loss"))
                st.plotly_chart(fig, width="stretch")
        res = job.get("result") or {}
        if xbd and job["status"] == "done":
            models_xbd.job_result(res)
        elif job["kind"] == jobs.EVALUATE and job["status"] == "done" and res.get("fpr"):
            auroc = res.get("auroc")
            fig = go.Figure([go.Scatter(x=res["fpr"], y=res["tpr"], mode="lines", name=_("ROC")),
                             go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=_("chance"),
                                        line=dict(dash="dash", color="gray"))])
            fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=_("false positive rate"),
                              yaxis_title=_("true positive rate"),
                              title=f"ROC · AUROC {auroc:.3f}" if auroc is not None else "ROC")
            st.plotly_chart(fig, width="stretch")
            st.caption(_("{normal} normal vs {anomalous} anomalous ({unit}) · model {model}").format(
                normal=res.get("n_normal"), anomalous=res.get("n_anomalous"), unit=evaluation_unit(res.get("unit")),
                model=plain(res.get("model", {}).get("name", "?"))))
        if job["status"] in jobs.ACTIVE and st.button(_("Cancel job #{id}").format(id=job["id"]),
                                                      icon=":material/cancel:"):
            jr.cancel(job["id"])
            st.rerun()


def _jobs_panel(ws, jr: jobs.JobRunner, polling: bool) -> None:
    recent = ws.list_jobs(limit=5)
    if polling and not any(j["status"] in jobs.ACTIVE for j in recent):
        st.rerun()  # the job ended: redraw the whole page (new model in the list) and stop polling
    if not recent:
        st.caption(_("No training or evaluation jobs yet."))
    for j in recent:
        _job_card(ws, jr, ws.get_job(j["id"]))


ctx = shell.context()
st.title(_("Models"))
if not ctx.is_admin:
    st.info(_("Training, evaluating and registering models is for admins; here are the models of this workspace."),
            icon=":material/admin_panel_settings:")
    _models_tab(ctx.ws)
    st.stop()
ctx.ws.recover_interrupted()  # jobs of a server that stopped show as interrupted, not running forever
jr = jobs.runner(ctx.ws.root)
running = any(j["status"] in jobs.ACTIVE for j in ctx.ws.list_jobs(limit=20))
with st.expander(_("Jobs"), expanded=True, icon=":material/pending_actions:"):
    st.fragment(run_every=POLL_S if running else None)(_jobs_panel)(ctx.ws, jr, running)
t_models, t_train, t_eval, t_upload = st.tabs([_("Model cards"), _("Train"), _("Evaluate"), _("Upload checkpoint")])
with t_models:
    _models_tab(ctx.ws)
with t_train:
    _train_tab(ctx, jr)
with t_eval:
    _evaluate_tab(ctx, jr)
with t_upload:
    _upload_tab(ctx)
