#!/usr/bin/env bash
# Reproduce the bundled Deeper FCDD model (assets/models/fcdd-vgg16.pt): FCDD over the pretrained hed-vgg16 trunk,
# frozen (it was trained on a 2-core CPU: the trunk runs forward only), its 1x1 head trained with the one-class loss.
# Normal imagery: pre-event overhead tiles (Joplin pre outside the held-out chips' area, xBD Harvey pre); anomalies:
# AIDER fire and flood photos (outlier exposure) mixed with FCDD confetti noise. The checkpoint stores the trained
# head only and names the trunk source (sha256).
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${BDA_SHARED_DATA:-../shared/data}
J=$D/geotiff/joplin_tornado_xview2deploy
OUT=${1:-assets/models/fcdd-vgg16.pt}
.venv/bin/python -m core train --arch fcdd-vgg16 --pretrained hed-vgg16 --freeze trunk \
  --normal "$J/pre" "$D/xbd/harvey/images/*_pre_disaster.png" \
  --anomalies "$D/aider" --confetti mix \
  --exclude-like "$J"/chips_aligned/pre/*.tif \
  --input-size 128 --epochs 4 --steps-per-epoch 50 --batch-size 16 --optimizer adam --lr 1e-3 \
  --seed 0 --name "BDA Deeper FCDD (HED VGG16)" --out "$OUT"
