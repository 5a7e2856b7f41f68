"""One exception hierarchy for everything a user can cause.

Every error a person can trigger (a bad file, a bad checkpoint, a missing CRS) is raised as a subclass of
:class:`CoreError` with a message that says what is wrong and what to do. The UI shows ``str(err)`` with
``st.error``; the CLI prints it and exits non-zero. Subclasses also derive from the matching builtin so that
callers who catch ``ValueError`` / ``OSError`` keep working.
"""

from __future__ import annotations

from typing import Any


class CoreError(Exception):
    """Root of all user-actionable errors raised by :mod:`core`."""


class InputError(CoreError, ValueError):
    """An input file or argument cannot be used (not an image, truncated, too large, empty...)."""


class ImageReadError(InputError):
    """An image or raster could not be decoded."""


class GeoreferenceError(InputError):
    """Georeferencing is missing, invalid or unsupported (rotated transform, corrupt GPS...)."""


class CheckpointError(CoreError, ValueError):
    """A model checkpoint is unsafe, truncated, or does not match the expected structure."""


class ModelError(CoreError, ValueError):
    """An unknown architecture name or an invalid model configuration."""


class TrainingDataError(InputError):
    """Training data is missing, empty, or unsafe (zip-slip, zip bomb)."""


class WorkspaceError(CoreError, OSError):
    """The workspace database or its files cannot be read or written."""


class ReportError(CoreError, ValueError):
    """A report cannot be produced from the given analysis or options."""


class ReviewConflictError(CoreError, RuntimeError):
    """A review was saved against an older state of the finding: another analyst reviewed it meanwhile.

    ``finding`` is the finding as it is now, ``since`` the audit rows (dicts of
    :meth:`core.store.Workspace.review_history`) made after the version the review started from, and ``version``
    the current version to pass to apply the review anyway.
    """

    def __init__(self, message: str, *, finding: object, since: list[dict[str, Any]], version: int) -> None:
        super().__init__(message)
        self.finding = finding
        self.since = since
        self.version = version


class AuthError(CoreError, PermissionError):
    """A login failed (wrong name or password, too many attempts) or a user may not do what was asked."""
