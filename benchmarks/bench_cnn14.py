"""CNN14-Fusion#3#6 extraction vs the reference PANNs forward with hooks, same process, CPU.

    python benchmarks/bench_cnn14.py [--clips 8] [--seconds 10] [--repeats 3]

Both start from the waveform: ours = numpy log-mel feature extractor + Cnn14FusionModel (blocks 1-6,
fusion of 3 and 6, no fc1/head); reference = panns_inference Cnn14 forward (torch front end, all
blocks, fc1, AudioSet head) with forward hooks on blocks 3 and 6 and the same fusion pooling. Random
weights (identical in both). Prints throughput, peak memory and the ratio, and checks the embeddings agree.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import PeakMemory  # noqa: E402
from panns_reference import random_panns_cnn14  # noqa: E402

from modeling_fusion.convert.cnn14 import convert_state_dict  # noqa: E402
from modeling_fusion.configuration_cnn14 import Cnn14FusionConfig  # noqa: E402
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor  # noqa: E402
from modeling_fusion.fusion import fuse_layers, pool_frames  # noqa: E402
from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification  # noqa: E402


def reference_embed(reference, waveforms):
    taps = {}
    hooks = [getattr(reference, f"conv_block{b}").register_forward_hook(
        lambda m, a, out, b=b: taps.__setitem__(b, out)) for b in (3, 6)]
    with torch.no_grad():
        reference(waveforms)
        fused = fuse_layers([taps[3], taps[6]], [8, 32])
    for hook in hooks:
        hook.remove()
    return pool_frames(fused)


def ours_embed(model, extractor, clips):
    features = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")
    with torch.no_grad():
        return model(**features).pooler_output


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    with PeakMemory() as peak:
        for _ in range(repeats):
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
    return result, min(times), peak.mib


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rate = 16000
    reference = random_panns_cnn14(rate, seed=0)
    model = Cnn14ForAudioClassification(Cnn14FusionConfig(id2label={i: str(i) for i in range(527)}))
    model.load_state_dict(convert_state_dict(reference.state_dict()))
    base, extractor = model.cnn14.eval(), Cnn14FeatureExtractor.for_sampling_rate(rate)
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal(int(args.seconds * rate)) * 0.1).astype(np.float32) for _ in range(args.clips)]
    waveforms = torch.from_numpy(np.stack(clips))

    theirs, ref_time, ref_mem = timed(lambda: reference_embed(reference, waveforms), args.repeats)
    ours, our_time, our_mem = timed(lambda: ours_embed(base, extractor, clips), args.repeats)
    error = ((ours - theirs).abs().max() / theirs.abs().max()).item()
    print(f"CNN14-Fusion#3#6, {args.clips} clips x {args.seconds:g} s, batch {args.clips}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"  reference (PANNs forward + hooks): {ref_time:.3f} s  {args.clips / ref_time:.2f} clips/s  "
          f"peak +{ref_mem:.0f} MiB")
    print(f"  ours (feature extractor + model):  {our_time:.3f} s  {args.clips / our_time:.2f} clips/s  "
          f"peak +{our_mem:.0f} MiB")
    print(f"  speed ratio ours/reference: {ref_time / our_time:.2f}x   max relative embedding difference {error:.1e}")


if __name__ == "__main__":
    main()
