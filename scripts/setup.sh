#!/usr/bin/env bash
# Set up a fresh machine: FFmpeg libraries for torchcodec (audio decoding in `datasets`), torch 2.13.0
# (the CUDA build where `nvidia-smi` sees a GPU, else the CPU build: a plain `torch` from PyPI is the
# multi-GB CUDA build), then this package with its eval and test extras, in editable mode.
# Debian 12 (FFmpeg 5.1), Ubuntu 22.04 (4.4) and 24.04 (6.1) name their FFmpeg libraries differently; the
# set is picked by what apt offers (torchcodec 0.13 supports FFmpeg 4-7). Safe to rerun: what is there stays.
# TORCH_INDEX_URL overrides where the CUDA build comes from (e.g. https://download.pytorch.org/whl/cu126
# for an older driver).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION=2.13.0

# libavcodec major -> the libraries of the same FFmpeg release (7.x, 6.x, 5.x, 4.x)
declare -A FFMPEG_LIBS=(
  [61]="libavcodec61 libavformat61 libavutil59 libswresample5"
  [60]="libavcodec60 libavformat60 libavutil58 libswresample4"
  [59]="libavcodec59 libavformat59 libavutil57 libswresample4"
  [58]="libavcodec58 libavformat58 libavutil56 libswresample3"
)
if ! ldconfig -p 2>/dev/null | grep -Eq 'libavcodec\.so\.(58|59|60|61)\b' || ! command -v ffmpeg >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    packages=""
    for major in 61 60 59 58; do
      if apt-cache policy "libavcodec$major" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        packages="${FFMPEG_LIBS[$major]}"
        break
      fi
    done
    [ -n "$packages" ] || echo "warning: apt offers no libavcodec 58-61; installing ffmpeg alone" >&2
    # shellcheck disable=SC2086  # word splitting wanted: a list of packages
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages ffmpeg >/dev/null
  else
    echo "warning: install FFmpeg 4-7 libraries (libavcodec, libavformat, libavutil, libswresample) and ffmpeg" \
         "for audio decoding" >&2
  fi
fi

if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then want=cuda; else want=cpu; fi
have=$(python -c 'import torch; print(("cuda" if torch.version.cuda else "cpu") + " " + torch.__version__.split("+")[0])' \
       2>/dev/null || echo none)
if [ "$have" != "$want $TORCH_VERSION" ]; then
  [ "$have" = none ] || python -m pip uninstall -q -y torch
  if [ "$want" = cuda ]; then
    # PyPI's Linux x86_64 torch wheel is the CUDA build
    python -m pip install -q "torch==$TORCH_VERSION" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  else
    python -m pip install -q "torch==$TORCH_VERSION" --index-url https://download.pytorch.org/whl/cpu \
      --extra-index-url https://pypi.org/simple
  fi
fi
python -m pip install -q -e ".[eval,test]"
python -c 'import torch; print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")'
