#!/usr/bin/env bash
# Reproduce the bundled FCDD ResNet-18 model (assets/models/fcdd-resnet18.pt, the default until 2026-12-06) from ../shared/data with the project's own CLI.
# Normal imagery: pre-event overhead tiles (Joplin pre tiles outside the held-out chips' area, xBD Harvey pre
# images). Anomalies: AIDER fire and flood
# photos (outlier exposure) mixed with FCDD confetti noise. The Joplin chips_aligned area is excluded from sampling
# so the chips stay a held-out evaluation set.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${BDA_SHARED_DATA:-../shared/data}
J=$D/geotiff/joplin_tornado_xview2deploy
OUT=${1:-assets/models/fcdd-resnet18.pt}
.venv/bin/python -m core train --arch fcdd-resnet18 \
  --normal "$J/pre" "$D/xbd/harvey/images/*_pre_disaster.png" \
  --anomalies "$D/aider" --confetti mix \
  --exclude-like "$J"/chips_aligned/pre/*.tif \
  --input-size 128 --epochs 6 --steps-per-epoch 50 --batch-size 16 --optimizer adam --lr 1e-3 \
  --seed 0 --name "BDA FCDD ResNet-18 (the fast model)" --out "$OUT"
