"""Where the bundled files are. Imports nothing heavy: the dashboard's sidebar reads it before torch is loaded."""

from __future__ import annotations

from pathlib import Path

#: The repository's ``assets/`` folder.
ASSETS = Path(__file__).resolve().parents[1] / "assets"
#: Folder of the bundled models and their model cards.
MODELS = ASSETS / "models"
#: The bundled default model (its card ``patchcore-vgg16.md`` is beside it): feature matching on the HED VGG16 trunk,
#: chosen because it measures best across the quality table (README: post-only, within-scene and change building
#: AUROC on Harvey, also with a bank that never saw Harvey); the fast FCDD ResNet-18 is ``fcdd-resnet18.pt``.
DEFAULT_MODEL = MODELS / "patchcore-vgg16.pt"
#: The fastest bundled model (FCDD over a ResNet-18 stem, 1.6 s per 1024² image on 2 CPU cores).
FAST_MODEL = MODELS / "fcdd-resnet18.pt"


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
