"""The workspace: an embedded SQLite database plus a files folder, where nothing an analyst does is ever lost.

Usage::

    ws = Workspace()                      # $BDA_WORKSPACE, else ~/.local/share/bda-workbench
    case = ws.create_case("Joplin tornado", event="EF5 2011-05-22")
    aid = ws.create_analysis(case, [{"path": "post.tif"}], model={"name": "fcdd"}, threshold=1.0, options={})
    ws.save_scene_result(aid, result)     # one transaction per scene; resume with ws.pending_inputs(aid)
    ws.review_finding("A1-f3", analyst="kim", status="confirmed")

See :class:`Workspace` for the folder layout and concurrency model, :mod:`core.store.schema` for the tables.
"""

from core.store.db import utc_now
from core.store.files import ENV_WORKSPACE, atomic_write_bytes, atomic_write_text, default_root, file_sha256
from core.store.schema import SCHEMA_VERSION
from core.store.workspace import Workspace

__all__ = ["ENV_WORKSPACE", "SCHEMA_VERSION", "Workspace", "atomic_write_bytes", "atomic_write_text",
           "default_root", "file_sha256", "utc_now"]
