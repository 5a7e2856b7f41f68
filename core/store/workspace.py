"""The :class:`Workspace`: everything an analyst does, kept in one SQLite database plus a files folder."""

from __future__ import annotations

from core.store.analyses import AnalysesMixin
from core.store.archive_export import ExportMixin
from core.store.archive_import import ImportMixin
from core.store.buildings import BuildingsMixin
from core.store.jobs import JobsMixin
from core.store.review import ReviewMixin
from core.store.settings import SettingsMixin
from core.store.users import UsersMixin


class Workspace(AnalysesMixin, ReviewMixin, JobsMixin, ExportMixin, ImportMixin, UsersMixin, SettingsMixin,
                BuildingsMixin):
    """A workspace folder: ``workspace.sqlite3`` (cases, analyses, scene results, findings, reviews and their audit
    trail, models, jobs, users and case membership) and ``files/`` (each analysis's heatmaps, overlays, reports).

    Location: ``root``, else ``$BDA_WORKSPACE``, else ``$XDG_DATA_HOME/bda-workbench``, else
    ``~/.local/share/bda-workbench``. Safe to share between threads (each gets its own connection) and between
    processes (SQLite WAL, write lock taken up front, retried up to ``busy_timeout_s``). Every method commits
    before it returns, so a browser refresh, a crashed worker or a restart loses nothing that was saved.
    Keep the folder on a local disk: SQLite's WAL mode needs shared memory, which network file systems lack.
    """
