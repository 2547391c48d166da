#!/usr/bin/env bash
# fetch-model.sh — download an ImageNet ResNet-50 from the ONNX Model Zoo and
# write a resnetd model directory:
#
#   tools/fetch-model.sh resnet50 [v1|v2] [OUT_DIR]
#
#   v1 (default)  resnet50-v1-7.onnx  ResNet-50 v1 (He et al. 2015, post-activation)
#   v2            resnet50-v2-7.onnx  ResNet-50 v2 (He et al. 2016, pre-activation)
#   Both are opset 7, input "data" [N,3,224,224], 1,000 logits.
#
# OUT_DIR defaults to models/resnet50-v1 (or -v2) in this repository. It gets
#   model.onnx    the downloaded file, checked against the sha256 pinned below
#   labels.txt    the 1,000 ImageNet class names (models/imagenet_labels.txt,
#                 written from torchvision's _IMAGENET_CATEGORIES)
#   config.json   torchvision's ImageNet preprocessing (rgb, 256 -> 224, mean/std)
#
# The sha256 values are the git-lfs object ids of these files in
# github.com/onnx/models at commit b1eeaa1a (its LFS pointer files), i.e. the
# sha256 of the exact bytes GitHub serves. A download whose hash differs is
# deleted and the script exits 1.
#
# Needs the internet: it checks connectivity first (5 s) and exits 1 with a
# clear message when offline, without writing anything.
# Exit codes: 0 ok, 1 download/verification failure or offline, 2 bad usage.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
base=https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model

usage() {
  echo "usage: tools/fetch-model.sh resnet50 [v1|v2] [OUT_DIR]" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
[[ "$1" == "resnet50" ]] || { echo "fetch-model: unknown model '$1' (known: resnet50)" >&2; exit 2; }
ver=${2:-v1}
case "$ver" in
  v1) file=resnet50-v1-7.onnx
      sha=af16a04a6ec48ac494065d4439fe9dea590d337b9ca6dc328160ccf04a217b9c
      size=102583340 ;;
  v2) file=resnet50-v2-7.onnx
      sha=79102261eb6e5fd7af5d27f41316293e388c5cb691e5d25bfb035c4f64fefe31
      size=102442452 ;;
  *) echo "fetch-model: unknown version '$ver' (v1 or v2)" >&2; exit 2 ;;
esac
out=${3:-$here/models/resnet50-$ver}
labels=$here/models/imagenet_labels.txt

command -v curl >/dev/null || { echo "fetch-model: curl is not installed" >&2; exit 1; }
command -v sha256sum >/dev/null || { echo "fetch-model: sha256sum is not installed" >&2; exit 1; }
[[ -f "$labels" ]] || { echo "fetch-model: $labels is missing" >&2; exit 1; }

# Fail fast when offline: one HEAD request with a short timeout.
if ! curl -sS -I --max-time "${FETCH_TIMEOUT:-5}" -o /dev/null https://github.com 2>/dev/null; then
  echo "fetch-model: cannot reach github.com (offline?): $file needs the internet;" \
    "copy an ONNX ResNet into a model directory by hand instead (see README)" >&2
  exit 1
fi

mkdir -p "$out"
tmp=$(mktemp "$out/.model.onnx.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo "fetch-model: downloading $file ($size bytes) into $out" >&2
if ! curl -fL --retry 2 --connect-timeout 10 -o "$tmp" "$base/$file"; then
  echo "fetch-model: download of $base/$file failed" >&2
  exit 1
fi
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [[ "$got" != "$sha" ]]; then
  echo "fetch-model: sha256 mismatch for $file: got $got, expected $sha (file discarded)" >&2
  exit 1
fi
mv "$tmp" "$out/model.onnx"
trap - EXIT
cp "$labels" "$out/labels.txt"
cat >"$out/config.json" <<EOF
{
  "name": "resnet50-$ver",
  "input": {"color": "rgb", "resize": 256, "crop": 224, "scale": 255.0,
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "max_batch": 8
}
EOF
echo "fetch-model: wrote $out (sha256 $sha verified)" >&2
echo "serve it with: resnetd serve --model $out" >&2
