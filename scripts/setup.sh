#!/usr/bin/env bash
# Set up a fresh machine: FFmpeg 5.1 libraries for torchcodec (audio decoding in `datasets`),
# the CPU build of torch 2.13.0 (a plain `torch` would pull a multi-GB CUDA build), then this package
# with its eval and test extras, in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ldconfig -p 2>/dev/null | grep -q 'libavcodec.so.59' || ! command -v ffmpeg >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libavcodec59 libavformat59 libavutil57 libswresample4 ffmpeg >/dev/null
  else
    echo "warning: install FFmpeg 5.1 (libavcodec59 libavformat59 libavutil57 libswresample4, ffmpeg) for audio decoding" >&2
  fi
fi
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[eval,test]"
