"""YAMNet's log-mel front end: VGGish's, with YAMNet's parameters (tensorflow/models research/audioset/yamnet)."""

from .feature_extraction_vggish import VGGishFeatureExtractor


class YAMNetFeatureExtractor(VGGishFeatureExtractor):
    """Waveform -> YAMNet log-mel patches `input_values` [B, E, 96, 64] + patch `attention_mask` [B, E].

    YAMNet's `params.py` and `features.py`: 16 kHz, 25 ms frames every 10 ms (no centring), periodic
    Hann, 512-point FFT magnitude, 64 HTK mel bands 125-7500 Hz, log(mel + 0.001); 0.96 s patches
    (96 frames) every 0.48 s (48 frames). The audio is zero-padded at its end to at least 15600
    samples (0.975 s) and then to a whole number of 7680-sample hops (`features.pad_waveform`), so a
    clip of N samples gives 1 + ceil(max(N - 15600, 0) / 7680) patches (a 1 s clip: 2).

    Everything else (float64 FFT, batching by patch count, padding with `padding_value`, the mask,
    input checks) is `VGGishFeatureExtractor`'s.
    """

    def __init__(self, log_offset=0.001, example_hop_frames=48, pad_end=True, **kwargs):
        super().__init__(log_offset=log_offset, example_hop_frames=example_hop_frames, pad_end=pad_end, **kwargs)
