"""argparse's own words ("usage:", "options", "show this help message and exit", its errors) in our language.

argparse translates them with ``gettext.gettext`` of the default domain, looked up at call time as the names ``_``
and ``ngettext`` of the ``argparse`` module (Python 3.11: ``from gettext import gettext as _, ngettext``). Our
catalogs are compiled in memory (:mod:`core.i18n`), not installed as a ``.mo`` of argparse's domain, so
:func:`argparse_language` points those two names at :func:`core.i18n._` / :func:`core.i18n.ngettext` while the
command line builds its parser and parses (help and usage errors are printed inside ``parse_args``), and puts
argparse's own functions back afterwards. The msgids below are argparse's exactly, marked here so that
``pybabel extract`` puts them into our catalogs.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from core.i18n import N_, _, ngettext

#: argparse's messages a user of this command line can meet (verbatim msgids of Python 3.11's argparse.py).
ARGPARSE_MESSAGES: tuple[str, ...] = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("not allowed with argument %s"),
    N_("ignored explicit argument %r"),
    N_("one of the arguments %s is required"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
    N_("unexpected option string: %s"),
    N_("can't open '%(filename)s': %(error)s"),
)


def expected_arguments(n: int) -> str:
    """argparse's plural message for ``nargs=N`` (marked for extraction; argparse itself calls ``ngettext``)."""
    return ngettext("expected %s argument", "expected %s arguments", n) % n


@contextlib.contextmanager
def argparse_language() -> Iterator[None]:
    """Inside the block argparse's own words come from our catalog, in the language in use (see the module notes)."""
    saved = {name: getattr(argparse, name) for name in ("_", "ngettext")}
    setattr(argparse, "_", _)  # noqa: B010 - argparse looks these names up in its module at call time
    setattr(argparse, "ngettext", ngettext)  # noqa: B010
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(argparse, name, fn)
