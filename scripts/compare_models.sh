#!/usr/bin/env bash
# The original's comparison on our data, with an equal CPU budget per model.
#
# Budget: the CPU time of one DeepLabV3-ResNet50 epoch each (one torch thread plus one
# data-loader process), at the original's settings: lr 1e-4, batch 4, lfw-parts train,
# evaluated on lfw-parts val each epoch. The epoch counts are that budget divided by each
# model's epoch time, measured on the 2-core CI-class machine (1 DeepLabV3-ResNet50 epoch ~
# 5 UNet-ResNet34 epochs ~ 55 fast_unet epochs); another machine may need other counts.
# 128 px instead of the original's 256 so that DeepLabV3 fits one whole schedule.
#
# usage: scripts/compare_models.sh DATA_DIR OUT_DIR     (e.g. ../shared/data/lfw-parts runs)
set -euo pipefail
data=${1:?usage: compare_models.sh DATA_DIR OUT_DIR}
out=${2:?usage: compare_models.sh DATA_DIR OUT_DIR}
mkdir -p "$out"
for spec in unet_resnet34:5 fast_unet:55 deeplabv3_resnet50:1; do
  model=${spec%%:*}
  epochs=${spec##*:}
  start=$(date +%s)
  facecam-train --data "$data" --model "$model" --epochs "$epochs" --batch-size 4 --lr 1e-4 --size 128 \
    --out "$out/budget_$model" --workers 1 --threads 1 > "$out/budget_$model.log" 2>&1 \
    || { echo "$model failed, see $out/budget_$model.log" >&2; exit 1; }
  echo "$model epochs $epochs wall $(( $(date +%s) - start )) s" >> "$out/budget_times.txt"
done
