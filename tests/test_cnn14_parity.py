"""CNN14 port vs the reference PANNs code (PyPI panns_inference), random weights, both sample rates.

The reference's random checkpoint goes through our converter; we compare log-mel, every ConvBlock
(through the fusion recipe applied independently to the reference's raw block outputs), the fc1
embedding and the clipwise output.

Tolerances: log-mel 1e-3 dB absolute (measured 1.3e-4 at 16 kHz, 1.5e-4 at 32 kHz). PANNs computes the STFT as a float32 convolution with DFT
kernels, we use a float64 FFT, so the reference carries float32 rounding of sums over 512/1024 taps
(~1e-6 relative in power, i.e. ~1e-5 dB, more where power is tiny). Network outputs are compared
on the *same* log-mel input (the reference's), so the port itself is checked to float32 rounding:
relative 1e-4 of each tensor's scale (measured: blocks bit-identical, fc1 2e-7).
"""

import numpy as np
import pytest
import soundfile as sf
import torch
from panns_reference import random_panns_cnn14

from conftest import SHARED
from modeling_fusion.convert.cnn14 import convert
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor
from modeling_fusion.modeling_cnn14 import Cnn14ForAudioClassification


def probe_audio(sampling_rate):
    """2.5 s: a real UrbanSound8K clip when ../shared is present, else a noisy chirp."""
    clips = sorted((SHARED / "data" / "urbansound8k_3folds" / "audio").glob("*/*.ogg"))
    if clips:
        audio, rate = sf.read(clips[0], dtype="float32")
        audio = np.interp(np.arange(int(len(audio) * sampling_rate / rate)) * rate / sampling_rate,
                          np.arange(len(audio)), audio).astype(np.float32)
    else:
        t = np.arange(4 * sampling_rate) / sampling_rate
        audio = (0.3 * np.sin(2 * np.pi * (200 + 800 * t) * t) + 0.05 * np.random.default_rng(0).standard_normal(
            len(t))).astype(np.float32)
    return audio[: int(2.5 * sampling_rate)]


def scale_close(actual, expected, rel=1e-4):
    actual, expected = torch.as_tensor(actual).double(), torch.as_tensor(expected).double()
    error = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert error <= rel * scale + 1e-7, f"max error {error:.3e} vs scale {scale:.3e}"
    return error / max(scale, 1e-12)


def independent_frames(block_map, kernel):
    """The recipe written out: max over each run of `kernel` frames, then index c*F + f."""
    batch, channels, frames, freqs = block_map.shape
    out = torch.empty(batch, frames // kernel, channels * freqs, dtype=block_map.dtype)
    for t in range(frames // kernel):
        window = block_map[:, :, t * kernel:(t + 1) * kernel, :].amax(dim=2)  # [B, C, F]
        out[:, t] = window.reshape(batch, channels * freqs)
    return out


@pytest.fixture(scope="module", params=[16000, 32000])
def converted(request, tmp_path_factory):
    rate = request.param
    reference = random_panns_cnn14(rate, seed=rate)
    checkpoint = tmp_path_factory.mktemp(f"ckpt{rate}") / "Cnn14_random.pth"
    torch.save({"iteration": 0, "model": reference.state_dict()}, checkpoint)
    folder = convert(checkpoint, tmp_path_factory.mktemp(f"out{rate}") / "cnn14", layers=[3, 6])
    model = Cnn14ForAudioClassification.from_pretrained(folder).eval()
    return rate, reference, model, Cnn14FeatureExtractor.from_pretrained(folder)


def run_reference(reference, audio):
    taps = {}
    hooks = [getattr(reference, f"conv_block{i}").register_forward_hook(
        lambda module, args, out, i=i: taps.__setitem__(i, out)) for i in range(1, 7)]
    hooks.append(reference.logmel_extractor.register_forward_hook(lambda m, a, out: taps.__setitem__("logmel", out)))
    with torch.no_grad():
        out = reference(torch.from_numpy(audio)[None])
    for hook in hooks:
        hook.remove()
    return taps, out


def test_log_mel_matches_panns(converted):
    rate, reference, _, extractor = converted
    audio = probe_audio(rate)
    taps, _ = run_reference(reference, audio)
    ours = extractor(audio, sampling_rate=rate)["input_values"][0]
    theirs = taps["logmel"][0, 0].numpy()
    assert ours.shape == theirs.shape == (1 + len(audio) // extractor.hop_length, 64)
    assert np.abs(ours - theirs).max() < 1e-3


def test_blocks_embedding_and_clipwise_match_panns(converted):
    rate, reference, model, _ = converted
    audio = probe_audio(rate)
    taps, out = run_reference(reference, audio)
    with torch.no_grad():
        ours = model.cnn14(taps["logmel"][:, 0], output_hidden_states=True, output_plain_embedding=True)
        logits = model(taps["logmel"][:, 0]).logits
    kernels = {1: 16, 2: 8, 3: 4, 4: 2, 5: 1, 6: 1}
    for block, kernel in kernels.items():
        scale_close(ours.hidden_states[block], independent_frames(taps[block], kernel))
    fused = torch.cat([independent_frames(taps[3], 4), independent_frames(taps[6], 1)], dim=-1)
    scale_close(ours.last_hidden_state, fused)
    scale_close(ours.pooler_output, fused.mean(dim=1) + fused.amax(dim=1))
    scale_close(ours.plain_embedding, out["embedding"])
    scale_close(torch.sigmoid(logits), out["clipwise_output"])


def test_end_to_end_from_waveform(converted):
    """Our front end + body vs the reference's, both from the waveform."""
    rate, reference, model, extractor = converted
    audio = probe_audio(rate)
    _, out = run_reference(reference, audio)
    with torch.no_grad():
        logits = model(**extractor(audio, sampling_rate=rate, return_tensors="pt")).logits
    scale_close(torch.sigmoid(logits), out["clipwise_output"], rel=1e-3)
