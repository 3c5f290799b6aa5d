"""Resamplers on a log sine sweep: soxr (HQ, VHQ), scipy resample_poly, FFmpeg (swresample defaults).

    python benchmarks/resampler_sweep.py [--seconds 10]

For each rate pair, a 20 Hz -> 0.999 * (source Nyquist) logarithmic sweep at amplitude 0.5 is
resampled and compared with the same sweep computed analytically at the target rate. Reported:
- passband error (dB): RMS error relative to the reference over the samples whose instantaneous
  frequency is below 0.9 x the lower Nyquist, 0.1 s from either end (the resamplers' filter edges);
- alias/leak (dB), downsampling only: RMS of the output over the samples whose frequency is above the
  target Nyquist (the reference is silent there: a perfect filter outputs nothing), relative to the
  sweep's RMS;
- time (ms) for the whole clip, best of 3, on this machine's CPU.
FFmpeg is the CLI (`ffmpeg -ar`), i.e. what transformers' `ffmpeg_read` uses (and libswresample, as in
torchcodec); its time includes starting the process.
"""

import argparse
import shutil
import subprocess
import time
from math import gcd

import numpy as np
import soxr
from scipy.signal import resample_poly

F0 = 20.0
AMPLITUDE = 0.5


def sweep(rate, seconds, f1):
    """Log sweep F0 -> f1 Hz at `rate` Hz; returns (samples float64, instantaneous frequency per sample)."""
    t = np.arange(int(seconds * rate)) / rate
    k = np.log(f1 / F0) / seconds
    phase = 2 * np.pi * F0 * (np.exp(k * t) - 1) / k
    return AMPLITUDE * np.sin(phase), F0 * np.exp(k * t)


def ffmpeg(x, source, target):
    command = ["ffmpeg", "-loglevel", "error", "-f", "f32le", "-ar", str(source), "-ac", "1", "-i", "pipe:0",
               "-ar", str(target), "-f", "f32le", "pipe:1"]
    result = subprocess.run(command, input=x.astype(np.float32).tobytes(), capture_output=True, check=True)
    return np.frombuffer(result.stdout, dtype=np.float32)


def poly(x, source, target):
    common = gcd(source, target)
    return resample_poly(x, target // common, source // common).astype(np.float32)


RESAMPLERS = {
    "soxr HQ": lambda x, s, t: soxr.resample(x, s, t, quality="HQ"),
    "soxr VHQ": lambda x, s, t: soxr.resample(x, s, t, quality="VHQ"),
    "scipy resample_poly": poly,
}
if shutil.which("ffmpeg"):
    RESAMPLERS["FFmpeg swresample"] = ffmpeg


def db(value):
    return 20 * np.log10(max(value, 1e-12))


def measure(source, target, seconds):
    x, _ = sweep(source, seconds, 0.999 * source / 2)
    reference, freq = sweep(target, seconds, 0.999 * source / 2)
    edge = int(0.1 * target)
    index = np.arange(len(freq))
    inside = (freq < 0.9 * min(source, target) / 2) & (index > edge) & (index < len(freq) - edge)
    above = freq > target / 2
    rows = []
    for name, resample in RESAMPLERS.items():
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            y = np.asarray(resample(x.astype(np.float32), source, target), dtype=np.float64)
            timings.append(time.perf_counter() - started)
        n = min(len(y), len(reference))
        y, ref = y[:n], reference[:n]
        rms = np.sqrt(np.mean(ref[inside[:n]] ** 2))
        passband = db(np.sqrt(np.mean((y - ref)[inside[:n]] ** 2)) / rms)
        leak = db(np.sqrt(np.mean(y[above[:n]] ** 2)) / rms) if above[:n].any() else float("nan")
        rows.append((name, passband, leak, 1000 * min(timings)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"soxr {soxr.__version__}; {args.seconds:g} s sweeps")
    print("| source -> target Hz | resampler | passband error dB | alias/leak dB | time ms |")
    print("|---|---|---|---|---|")
    for source, target in ((44100, 16000), (8000, 16000), (16000, 32000), (44100, 32000)):
        for name, passband, leak, ms in measure(source, target, args.seconds):
            leak = "n/a" if np.isnan(leak) else f"{leak:.1f}"
            print(f"| {source} -> {target} | {name} | {passband:.1f} | {leak} | {ms:.1f} |")


if __name__ == "__main__":
    main()
