"""Where the bundled files are. Imports nothing heavy: the dashboard's sidebar reads it before torch is loaded."""

from __future__ import annotations

from pathlib import Path

#: The repository's ``assets/`` folder.
ASSETS = Path(__file__).resolve().parents[1] / "assets"
#: Folder of the bundled models and their model cards.
MODELS = ASSETS / "models"
#: The bundled default model (see its card ``default.md`` beside it).
DEFAULT_MODEL = MODELS / "default.pt"


def bundled_models() -> list[Path]:
    """Every bundled checkpoint (``assets/models/*.pt``), the default first."""
    found = sorted(MODELS.glob("*.pt"))
    return sorted(found, key=lambda p: p != DEFAULT_MODEL)


def card_title(checkpoint: Path) -> str:
    """The model's name from the first heading of its card ``<stem>.md`` (cheap: no checkpoint is read)."""
    card = checkpoint.with_suffix(".md")
    try:
        first = card.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return checkpoint.stem
    return first.lstrip("# ").removeprefix("Model card: ").strip() or checkpoint.stem
