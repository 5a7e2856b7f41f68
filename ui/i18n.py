"""The language of a session: the sidebar switch, remembering it per user, and the Hangul web font.

:func:`install` makes :func:`core.i18n._` translate to the session's language (``ui.state.LANG``) in every run of
the app, fragments and callbacks included. The language is the one the user chose last (remembered in the
workspace's preferences: per account on a team server, once for the single analyst of a workspace without
accounts), else ``$BDA_LANG``, else English.

Korean text needs a Hangul font the browser may not have: NanumGothic, the font koreanize-matplotlib installs for
the report's figures, is copied into the app's ``static/fonts/`` folder and declared in ``.streamlit/config.toml``
(``[[theme.fontFaces]]`` with a Hangul ``unicodeRange``, served by Streamlit's static file serving), so nothing comes
from a CDN or the system.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from core.i18n import LANG_NAMES, LANGS, N_, _, default_lang, get_lang, normalise, resolver, set_resolver
from core.store import Workspace
from core.store.prefs import get_language, set_language
from core.store.users import User
from ui import state as S

HERE = Path(__file__).resolve().parent.parent
#: Where the app's static files are served from (``/app/static/...``; ``server.enableStaticServing``).
STATIC_FONTS = HERE / "static" / "fonts"
#: Font files copied from koreanize-matplotlib's package data, as named in ``.streamlit/config.toml``.
FONT_FILES = ("NanumGothic.ttf", "NanumGothicBold.ttf")
_LOG = logging.getLogger(__name__)


def _session_lang() -> str | None:
    if get_script_run_ctx(suppress_warning=True) is None:
        return None  # a worker thread: $BDA_LANG
    try:
        return normalise(st.session_state.get(S.LANG))
    except Exception:  # noqa: BLE001 - no session state in this thread: the default language
        return None


def install() -> None:
    """Make :func:`core.i18n._` follow the session's language (idempotent: every run calls it)."""
    if resolver() is not _session_lang:
        set_resolver(_session_lang)


def init_session(ws: Workspace | None, user: User | None) -> str:
    """Set the session's language once per user (a login loads that user's choice); returns it."""
    who = user.name if user is not None else ""
    if S.get(S.LANG) is None or S.get(S.LANG_FOR) != who:
        remembered = get_language(ws.root, who or None) if ws is not None else None
        if remembered is None and S.get(S.LANG) is not None:
            remembered = S.get(S.LANG)  # logged in after choosing on the login page: keep that choice
        S.put(S.LANG, remembered or default_lang())
        S.put(S.LANG_FOR, who)
    return str(S.get(S.LANG))


def _changed(ws: Workspace | None, user: User | None) -> None:
    lang = normalise(st.session_state.get(S.W_LANG)) or default_lang()
    S.put(S.LANG, lang)
    S.resync_all(keep_widget=S.W_LANG)  # the other widgets' labels change with the language: see S.resync_all
    if ws is not None:
        set_language(ws.root, user.name if user is not None else None, lang)


def switch(ws: Workspace | None, user: User | None) -> None:
    """The language switch (English / 한국어); the choice is remembered for ``user`` in the workspace."""
    S.bind(S.W_LANG, S.LANG, adopt=False)  # its callback remembers the choice
    st.segmented_control(_("Language"), list(LANGS), format_func=LANG_NAMES.get, key=S.W_LANG,
                         on_change=_changed, args=(ws, user), selection_mode="single",
                         help=_("The language of the pages and of new reports; remembered for you in this "
                                "workspace."))


def ensure_font() -> bool:
    """Copy the Hangul web font into ``static/fonts/`` when it is not there yet; False when it cannot be (the
    browser then falls back to its own fonts for Hangul)."""
    try:
        if all((STATIC_FONTS / name).is_file() for name in FONT_FILES):
            return True
        spec = importlib.util.find_spec("koreanize_matplotlib")
        if spec is None or spec.origin is None:
            return False
        src = Path(spec.origin).parent / "fonts"
        STATIC_FONTS.mkdir(parents=True, exist_ok=True)
        for name in FONT_FILES:
            dest = STATIC_FONTS / name
            if not dest.is_file():
                tmp = dest.with_suffix(".part")
                web_font(src / name, tmp)
                tmp.replace(dest)
        return True
    except (OSError, ValueError) as exc:
        _LOG.warning("cannot copy the Hangul web font into %s: %s", STATIC_FONTS, exc)
        return False


def upload_size_text() -> str:
    """The upload limit as Streamlit's uploaders state it ("2GB", "200MB"), from ``server.maxUploadSize`` (MB)."""
    mb = int(st.get_option("server.maxUploadSize"))
    return f"{mb // 1024}GB" if mb >= 1024 and mb % 1024 == 0 else f"{mb}MB"


def _css_text(text: str) -> str:
    return '"' + "".join(ch if ch.isalnum() or ch in " .,()·-" else f"\\{ord(ch):x} " for ch in text) + '"'


def uploader_style(lang: str) -> str:
    """The style sheet that shows Streamlit's own uploader words ("Upload", "2GB per file", English whatever the
    page's language; Streamlit has no option for them, streamlit/streamlit#13500) in ``lang`` ("" for English). The
    file types an uploader lists after the limit go with it: the uploaders that restrict types name them in their
    labels."""
    if lang == "en":
        return ""
    button = '[data-testid="stFileUploaderDropzone"] button [data-testid="stMarkdownContainer"] p'
    limit = '[data-testid="stFileUploaderDropzoneInstructions"] span'
    upload = _css_text(_("Upload"))
    per_file = _css_text(_("{size} per file at most").format(size=upload_size_text()))
    return (f"<style>{button}, {limit} {{font-size: 0}} {button}::after {{content: {upload}; font-size: 14px}} "
            f"{limit}::after {{content: {per_file}; font-size: 14px}}</style>")


def translate_streamlit_words() -> None:
    """Draw :func:`uploader_style` for the session's language (nothing in English)."""
    style = uploader_style(get_lang())
    if style:
        st.html(style)


#: Values stored in English in the workspace and shown translated with ``_(value)``: marked here for extraction.
TERMS = (
    # analysis and job statuses
    N_("queued"), N_("running"), N_("done"), N_("failed"), N_("cancelled"), N_("interrupted"),
    # roles
    N_("admin"), N_("analyst"), N_("viewer"),
    # review statuses, review fields and outcomes
    N_("unreviewed"), N_("confirmed"), N_("rejected"), N_("status"), N_("grade"), N_("notes"), N_("applied"),
    N_("kept theirs"),
    # image verdicts
    N_("anomalous"), N_("normal"),
    # detection methods (Copernicus EMS det_method)
    N_("automatic extraction"), N_("semi-automatic extraction"),
    # model families (the registry's objective table)
    N_("Deeper FCDD"), N_("FCDD"), N_("HSC"), N_("Feature matching (PatchCore)"),
    # pairing rules, georeference methods, before/after modes, server-path roles
    N_("overlap"), N_("name"), N_("manual"), N_("fitted"), N_("gps-footprint"), N_("user"), N_("raster"),
    N_("wipe"), N_("blend"), N_("post-event"), N_("pre-event"),
    # where a staged image came from (ui.analyze_inputs)
    N_("upload"), N_("server path"),
    # table columns (ui.i18n.column_labels)
    N_("when"), N_("unit"), N_("folder"), N_("damaged"), N_("undamaged"), N_("images"), N_("tiles"), N_("tile px"),
    N_("building AUROC"), N_("tile AUROC"), N_("anomalous"),
)


def web_font(src: Path, dest: Path) -> None:
    """Write the TTF ``src`` as a font browsers accept at ``dest``: NanumGothic carries empty VTT source tables
    (``TSI0``..``TSI5``), and Chrome's font sanitizer (OTS) refuses the whole font for them ("TSI3: zero-length
    table"), so they are dropped (they only matter to a font editor)."""
    from fontTools.ttLib import TTFont  # fontTools comes with fpdf2

    font = TTFont(str(src), lazy=False)
    for tag in [t for t in font.keys() if t.startswith("TSI")]:
        del font[tag]
    font.save(str(dest))
    font.close()


def fixed(options: Iterable[Any], label: Callable[[Any], str]) -> Callable[[Any], str]:
    """A widget's ``format_func`` whose labels are computed now, in this run's language: Streamlit may format the
    options again outside the script run (AppTest does), where the session's language is not known."""
    table = {o: label(o) for o in options}
    return lambda o: table.get(o, str(o))


def column_labels(keys: Iterable[str]) -> dict[str, Any]:
    """``column_config`` showing the columns ``keys`` (English, stable: they are the data's keys) translated."""
    return {k: st.column_config.Column(_(k)) for k in keys}
