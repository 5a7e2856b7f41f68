"""Case archives: the format both directions share. Export is :mod:`core.store.archive_export`, import
:mod:`core.store.archive_import`.

Layout of an archive::

    manifest.json            format, versions, export time, case summary, every file with size and sha256
    rows.json                the case, its analyses, inputs, scene results, findings and the review audit trail
    files/analyses/<id>/...  heatmaps, overlays, reports of each analysis (ids as they were in the exporting
                             workspace; an import gives new ids and rewrites finding ids "A<old>-x" -> "A<new>-x")

    files/inputs/<n>-<name>  the input images (post- and pre-event) the case's analyses read: by default those
                             uploaded into the workspace; with ``inputs="all"`` the server-side files too
"""

from __future__ import annotations

#: ``format`` of an archive's manifest.
FORMAT = "bda-workbench-case"
#: Version of the layout; an import refuses archives of a newer one.
FORMAT_VERSION = 1
#: What an export carries of the input images: those uploaded into the workspace, every one, or none.
INPUT_MODES = ("workspace", "all", "none")
