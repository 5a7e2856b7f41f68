#!/usr/bin/env bash
# Reproduce the bundled feature-matching model (assets/models/patchcore-vgg16.pt) from ../shared/data with the
# project's own CLI. No gradients: the pretrained hed-vgg16 trunk embeds the normal imagery (pre-event overhead
# tiles: Joplin pre outside the held-out chips' area, xBD Harvey pre images) and a greedy coreset of the features
# becomes the memory bank. The checkpoint stores the bank and names the trunk source (its sha256), not the trunk.
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${BDA_SHARED_DATA:-../shared/data}
J=$D/geotiff/joplin_tornado_xview2deploy
OUT=${1:-assets/models/patchcore-vgg16.pt}
.venv/bin/python -m core train --arch patchcore-vgg16 --pretrained hed-vgg16 \
  --normal "$J/pre" "$D/xbd/harvey/images/*_pre_disaster.png" \
  --exclude-like "$J"/chips_aligned/pre/*.tif \
  --input-size 128 --bank-max 12288 --neighbours 9 --stages 3 --seed 0 \
  --name "BDA feature matching (PatchCore, HED VGG16)" --out "$OUT"
