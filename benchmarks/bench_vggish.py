"""VGGish-Fusion#10#15 extraction vs the reference pipeline, same process, CPU.

    python benchmarks/bench_vggish.py [--clips 8] [--seconds 10] [--repeats 5] [--threads N]

Both start from the waveform and end at the 8192-d clip embedding. Reference = TF's numpy front end
run per clip (PyPI torchvggish `waveform_to_examples`), then one torchvggish forward over all
examples (whole network: conv stack, FC stack, final ReLU) with hooks on children 9 and 14, and the
fusion pooling. Ours = batched torch VGGishFeatureExtractor + VGGishFusionModel (stops after #15,
channels-last convolutions). Random weights, identical in both. Runs alternate and the best of
`--repeats` counts. Prints the ratio, the embeddings' agreement, and GFLOP/s (convolution and FC
multiply-adds x 2 that each path performs) against this machine's fp32 matmul rate, measured here.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import PeakMemory  # noqa: E402
from vggish_reference import random_torchvggish, vggish_input  # noqa: E402

from modeling_fusion.configuration_vggish import VGGishFusionConfig  # noqa: E402
from modeling_fusion.convert.vggish import convert_state_dict  # noqa: E402
from modeling_fusion.feature_extraction_vggish import VGGishFeatureExtractor  # noqa: E402
from modeling_fusion.modeling_vggish import VGGishFusionModel  # noqa: E402

CONVS = [(1, 64, 96, 64), (64, 128, 48, 32), (128, 256, 24, 16), (256, 256, 24, 16), (256, 512, 12, 8),
         (512, 512, 12, 8)]  # (in, out, time, mel) of conv1 ... conv4_2
FCS = [(12288, 4096), (4096, 4096), (4096, 128)]


def flops_per_example(with_fc):
    conv = sum(2 * c_in * c_out * 9 * t * f for c_in, c_out, t, f in CONVS)
    return conv + (sum(2 * a * b for a, b in FCS) if with_fc else 0)


def matmul_gflops(size=2048, repeats=10):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(timeit(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def timeit(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def reference_embed(reference, clips):
    examples = [vggish_input.waveform_to_examples(clip.astype(np.float64), 16000, False) for clip in clips]
    counts = [len(e) for e in examples]
    taps = {}
    hooks = [reference.features[i].register_forward_hook(lambda m, a, out, i=i: taps.__setitem__(i, out))
             for i in (9, 14)]
    with torch.no_grad():
        reference(torch.from_numpy(np.concatenate(examples)).float()[:, None])
        frames = [F.max_pool2d(taps[i], (k, 1)).permute(0, 2, 1, 3).flatten(2) for i, k in ((9, 4), (14, 2))]
    for hook in hooks:
        hook.remove()
    fused = torch.cat(frames, dim=-1).split(counts)  # per clip [E, 6, 8192]
    return torch.stack([f.flatten(0, 1).mean(0) + f.flatten(0, 1).amax(0) for f in fused]), sum(counts)


def ours_embed(model, extractor, clips):
    features = extractor(clips, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        return model(**features).pooler_output


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reference = random_torchvggish(seed=0)
    model = VGGishFusionModel(VGGishFusionConfig(fusion_layers=[10, 15]))
    model.load_state_dict(convert_state_dict(reference.state_dict(), "torchvggish"))
    model.eval()
    extractor = VGGishFeatureExtractor()
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(int(args.seconds * 16000)) * 0.1).astype(np.float32) for _ in range(args.clips)]

    load_before = os.getloadavg()[0]
    matmul_before = matmul_gflops()
    theirs, num_examples = reference_embed(reference, clips)  # warm-up both
    ours = ours_embed(model, extractor, clips)
    ref_times, our_times = [], []
    for _ in range(args.repeats):
        with PeakMemory() as ref_peak:
            ref_times.append(timeit(lambda: reference_embed(reference, clips)))
        with PeakMemory() as our_peak:
            our_times.append(timeit(lambda: ours_embed(model, extractor, clips)))
    front_end = min(timeit(lambda: extractor(clips, sampling_rate=16000, return_tensors="pt")) for _ in range(3))
    ref_front_end = min(timeit(lambda: [vggish_input.waveform_to_examples(c.astype(np.float64), 16000, False)
                                        for c in clips]) for _ in range(3))
    matmul = max(matmul_before, matmul_gflops())
    ref_time, our_time = min(ref_times), min(our_times)
    median_ratio = float(np.median(np.array(ref_times) / np.array(our_times)))
    ref_rate = num_examples * flops_per_example(True) / ref_time / 1e9
    our_rate = num_examples * flops_per_example(False) / our_time / 1e9
    error = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    print(f"VGGish-Fusion#10#15, {args.clips} clips x {args.seconds:g} s = {num_examples} examples, "
          f"{torch.get_num_threads()} threads, best of {args.repeats} (alternating); load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"  reference (numpy front end per clip + torchvggish forward + hooks): {ref_time:.3f} s  "
          f"{args.clips / ref_time:.2f} clips/s  front end {ref_front_end:.3f} s  {ref_rate:.1f} GFLOP/s  "
          f"peak +{ref_peak.mib:.0f} MiB")
    print(f"  ours (batched torch front end + model up to #15):               {our_time:.3f} s  "
          f"{args.clips / our_time:.2f} clips/s  front end {front_end:.3f} s  {our_rate:.1f} GFLOP/s  "
          f"peak +{our_peak.mib:.0f} MiB")
    print(f"  fp32 matmul rate (torch.mm 2048^3, best before/after) on this machine: {matmul:.1f} GFLOP/s -> "
          f"reference at {ref_rate / matmul:.0%}, ours at {our_rate / matmul:.0%} of it")
    print(f"  speed ratio ours/reference: {ref_time / our_time:.2f}x best-to-best, {median_ratio:.2f}x median of "
          f"paired runs (target >= 1.3x)   max relative embedding difference {error:.1e}")


if __name__ == "__main__":
    main()
