"""Where the bundled files are. Imports nothing heavy: the dashboard's sidebar reads it before torch is loaded."""

from __future__ import annotations

from pathlib import Path

#: Folder of the bundled models and their model cards.
MODELS = Path(__file__).resolve().parents[1] / "assets" / "models"
#: The bundled default model (see its card ``default.md`` beside it).
DEFAULT_MODEL = MODELS / "default.pt"
