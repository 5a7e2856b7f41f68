#!/usr/bin/env bash
# Reproduce the bundled Deeper FCDD (fcdd-vgg16.pt) or HSC (hsc-vgg16.pt) model from ../shared/data with the
# project's own CLI:   assets/models/train_vgg16_head.sh fcdd|hsc [OUT.pt]
# Both put their objective's head on the pretrained hed-vgg16 trunk and fine-tune the trunk's last stage
# (conv4_1-conv4_3) with it at lr 1e-4, as the Deeper FCDD paper fine-tunes its VGG16 (1.2-1.4 s a step on 2 quiet
# CPU cores): Deeper FCDD's 1x1 conv head (FCDD loss on the map), HSC's pooled-vector head (hypersphere
# classifier). Normal imagery: pre-event overhead tiles (Joplin pre outside the held-out chips' area, xBD Harvey pre);
# anomalies: AIDER fire and flood photos (outlier exposure) mixed with FCDD confetti noise. The checkpoint stores
# what was trained (the head, and for Deeper FCDD the last stage) and names the trunk source (sha256).
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
  fcdd) ARCH=fcdd-vgg16; NAME="BDA Deeper FCDD (HED VGG16)" ;;
  hsc)  ARCH=hsc-vgg16;  NAME="BDA HSC (HED VGG16)" ;;
  *) echo "usage: $0 fcdd|hsc [OUT.pt]" >&2; exit 2 ;;
esac
D=${BDA_SHARED_DATA:-../shared/data}
J=$D/geotiff/joplin_tornado_xview2deploy
OUT=${2:-assets/models/$ARCH.pt}
.venv/bin/python -m core train --arch "$ARCH" --pretrained hed-vgg16 --freeze auto \
  --normal "$J/pre" "$D/xbd/harvey/images/*_pre_disaster.png" \
  --anomalies "$D/aider" --confetti mix \
  --exclude-like "$J"/chips_aligned/pre/*.tif \
  --input-size 128 --epochs 4 --steps-per-epoch 50 --batch-size 16 --optimizer adam --lr 1e-4 \
  --seed 0 --name "$NAME" --out "$OUT"
