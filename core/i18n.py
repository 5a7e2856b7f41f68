"""Korean and English: gettext catalogs and the language in use.

Every string a person reads is written in English in the source, wrapped in :func:`_` (or :func:`ngettext` for
counts) and translated through the standard gettext catalogs ``assets/locale/<lang>/LC_MESSAGES/bda.po``, kept with
Babel (``pybabel extract`` / ``update``; see the README). The ``.po`` files are the source of truth: they are
compiled in memory on first use (Babel's ``write_mo`` then :class:`gettext.GNUTranslations`), so a fresh clone never
runs on a stale or missing ``.mo``. Fuzzy entries are never used.

Which language :func:`_` translates to, in this order:

1. the one set for this thread/context with :func:`use` (a report written in the language asked for, the CLI's
   ``report --lang`` for that command);
2. the one a front end reports through :func:`set_resolver` (the Streamlit app: the session's language);
3. ``$BDA_LANG`` (``ko`` or ``en``), else English.

Strings defined as data at import time (grade labels, event types) are marked with :func:`N_` for extraction and
translated with :func:`_` where they are shown. This module never imports streamlit.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
import io
import os
import re
import string
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Languages with a catalog, in the order the switch lists them.
LANGS: tuple[str, ...] = ("en", "ko")
#: Name of each language in itself (what the switch shows).
LANG_NAMES: dict[str, str] = {"en": "English", "ko": "한국어"}
#: Environment variable with the default language.
ENV_LANG = "BDA_LANG"
DOMAIN = "bda"
#: Folder of the catalogs: ``<lang>/LC_MESSAGES/bda.po``.
LOCALE_DIR = Path(__file__).resolve().parent.parent / "assets" / "locale"

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("bda_lang", default=None)
_recording: contextvars.ContextVar[bool] = contextvars.ContextVar("bda_recording", default=False)
_resolver: list[Callable[[], str | None]] = []
_LOCK = threading.Lock()


def normalise(lang: object) -> str | None:
    """``"ko"``, ``"en"`` (also from ``ko_KR.UTF-8``, ``EN``...), or None for anything else."""
    if not isinstance(lang, str):
        return None
    code = lang.strip().lower().replace("-", "_").split(".")[0].split("_")[0]
    return code if code in LANGS else None


def default_lang() -> str:
    """``$BDA_LANG`` when it names a known language, else English."""
    return normalise(os.environ.get(ENV_LANG, "")) or "en"


def check_lang(lang: str) -> str:
    """``lang`` normalised; raises :class:`core.errors.InputError` for a language without a catalog."""
    code = normalise(lang)
    if code is None:
        from core.errors import InputError  # core.errors imports nothing of this module: no cycle either way

        raise InputError(_("unknown language {lang!r}: use one of {langs}").format(lang=lang, langs=", ".join(LANGS)))
    return code


def resolver() -> Callable[[], str | None] | None:
    """The installed front-end lookup, if any."""
    return _resolver[0] if _resolver else None


def get_lang() -> str:
    """The language :func:`_` translates to now (see the module notes)."""
    lang = _current.get()
    if lang:
        return lang
    for resolve in _resolver:
        got = normalise(resolve())
        if got:
            return got
    return default_lang()


def set_resolver(resolve: Callable[[], str | None] | None) -> None:
    """Install the front end's language lookup (called on every translation; may return None), or remove it.
    Replaced in one step: a translation in another thread never sees no lookup in between."""
    _resolver[:] = [] if resolve is None else [resolve]


@contextlib.contextmanager
def use(lang: str | None) -> Iterator[str]:
    """Translate to ``lang`` inside the block (None: leave the language as it is); yields the language in use."""
    if lang is None:
        yield get_lang()
        return
    token = _current.set(check_lang(lang))
    try:
        yield get_lang()
    finally:
        _current.reset(token)





def po_path(lang: str) -> Path:
    """The catalog file of ``lang``."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def _translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English, or a missing catalog: the source strings as they are)."""
    path = po_path(lang)
    if lang == "en" or not path.is_file():
        return gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with _LOCK, path.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def translations(lang: str | None = None) -> gettext.NullTranslations:
    """The gettext translations of ``lang`` (default: the language in use)."""
    return _translations(normalise(lang) or get_lang())


def _(message: str) -> str:
    """``message`` in the language in use (the English source when it has no translation); inside
    :func:`recording`, a :class:`Text` that keeps its record."""
    if not message:
        return message
    text = translations().gettext(message)
    return Text.of(text, message) if _recording.get() else text


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n`` in the language in use."""
    return translations().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it (data defined at import; translate it where shown)."""
    return message


def reload_catalogs() -> None:
    """Forget the compiled catalogs (after a ``.po`` file changed)."""
    _translations.cache_clear()


#: A message kept with a result (a scene's warnings): ``{"msg": English template, "args": {name: value}}``. The
#: template is its gettext msgid (mark it with :func:`N_`), so the record is the same whatever the language of the
#: session that made it, and :func:`say` puts it in words in the language of whoever reads it. JSON-safe.
Message = dict[str, Any]


def message(template: str, /, **args: Any) -> Message:
    """A :data:`Message` of ``template`` (``N_("... {name} ...")``) and its arguments: plain values, or messages
    themselves (put in words with the outer one). Values other than numbers, text and messages are kept as text."""
    def keep(v: Any) -> Any:
        if isinstance(v, str):
            return str(v)  # a Text's sentence, without its record (Text.of keeps records as messages)
        return v if isinstance(v, (int, float, bool, dict)) or v is None else str(v)

    return {"msg": template, "args": {k: keep(v) for k, v in args.items()}}


def is_message(value: object) -> bool:
    """Whether ``value`` is a :data:`Message` record."""
    return isinstance(value, dict) and isinstance(value.get("msg"), str)


def say(value: object) -> str:
    """A stored message in the language in use: a :data:`Message` (its message arguments too), or an older
    record's plain sentence as it was stored ("" for None)."""
    if not is_message(value):
        return "" if value is None else str(value)
    assert isinstance(value, dict)
    raw = value.get("args")
    args = {k: say(v) if is_message(v) else v for k, v in (raw.items() if isinstance(raw, dict) else ())}
    template: str = value["msg"]
    text = _(template)
    try:
        return _RECORD_FORMAT.format(text, **args)
    except (KeyError, IndexError, ValueError, TypeError):  # a record missing an argument, or hostile: as it is
        return text


class Text(str):
    """A sentence in the language in use that also keeps its language-free :data:`Message` (``record``), made by
    :func:`_` inside :func:`recording`. :meth:`format` with named arguments keeps the record (a :class:`Text` or an
    exception carrying one as an argument is kept as the inner record); anything else made from it (``+``,
    f-strings, positional ``format``) is a plain ``str``, which the reader then sees in the language it was made in."""

    record: Message

    @classmethod
    def of(cls, text: str, template: str, /, **args: Any) -> Text:
        """``text`` keeping the record of ``template`` and ``args``."""
        out = cls(text)
        out.record = message(template, **{k: t.record if (t := _text_in(v)) is not None else v
                                           for k, v in args.items()})
        return out

    def format(self, *args: Any, **kwargs: Any) -> str:  # noqa: D102 - str.format, keeping the record
        text = str.format(self, *args, **kwargs)
        if args:
            return text
        return Text.of(text, self.record["msg"], **{**self.record["args"], **kwargs})


def _text_in(value: object) -> Text | None:
    """``value`` itself, or the one argument of an exception, when it is a :class:`Text`."""
    if isinstance(value, BaseException) and len(value.args) == 1:
        value = value.args[0]
    return value if isinstance(value, Text) else None


def record_of(value: object) -> Message | str:
    """What to store for a sentence (or an exception whose one argument is one): its :data:`Message` when it was
    made inside :func:`recording`, else its text."""
    text = _text_in(value)
    return dict(text.record) if text is not None else str(value)


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """Inside the block, :func:`_` returns :class:`Text` (its sentence and its record): code whose messages are
    stored (a scene's failure) runs in it so that whoever reads them later reads them in their own language."""
    token = _recording.set(True)
    try:
        yield
    finally:
        _recording.reset(token)


class _RecordFormatter(string.Formatter):
    """``str.format`` for templates that come from stored records, which an imported case archive can carry: only
    ``{name}`` fields (no attribute or index lookups such as ``{a.__class__}``), ``!r``/``!s``, and short format
    specs (``{x:.2f}``; no ``{x:>999999999}`` that would allocate gigabytes on every page view)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        if not field_name.isidentifier():
            raise ValueError(f"field {field_name!r} is not a plain name")
        return kwargs[field_name], field_name

    def format_field(self, value: Any, format_spec: str) -> Any:
        if format_spec and not _SAFE_SPEC.fullmatch(format_spec):
            raise ValueError(f"format spec {format_spec!r} not allowed in a record")
        return super().format_field(value, format_spec)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion not in (None, "r", "s"):
            raise ValueError(f"conversion {conversion!r} not allowed in a record")
        return super().convert_field(value, conversion)


_SAFE_SPEC = re.compile(r"[<>^]?\d{0,2}(\.\d{1,2})?[a-z%]?")
_RECORD_FORMAT = _RecordFormatter()
