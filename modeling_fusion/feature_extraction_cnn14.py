"""PANNs log-mel front end (torchlibrosa Spectrogram + LogmelFilterBank): numpy reference, batched torch on `device=`."""

import numpy as np
import torch
from transformers import SequenceFeatureExtractor

from .audio_input import check_fixed_clip_seconds, mono_clips
from .configuration_cnn14 import MIN_FRAMES
from .spectral import batch_waves, filterbank, frame_mask, log_mel_features, on_device, pad_past_end, reflect_pad

# Published PANNs front ends by sampling rate: (n_fft = window, hop, f_min, f_max).
PANNS_FRONT_ENDS = {16000: (512, 160, 50.0, 8000.0), 32000: (1024, 320, 50.0, 14000.0)}


def hz_to_slaney_mel(freq):
    """Slaney's mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    linear = freq / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(freq, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(freq >= 1000.0, log_part, linear)


def slaney_mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3))


def slaney_mel_filters(sampling_rate, n_fft, n_mels, f_min, f_max):
    """[n_mels, n_fft // 2 + 1] triangles linear in Hz on Slaney-spaced edges, area-normalised."""
    bin_freqs = np.linspace(0.0, sampling_rate / 2, n_fft // 2 + 1)
    edges = slaney_mel_to_hz(np.linspace(hz_to_slaney_mel(f_min), hz_to_slaney_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bin_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return filters * (2.0 / (edges[2:] - edges[:-2]))[:, None]


class Cnn14FeatureExtractor(SequenceFeatureExtractor):
    """Waveform -> PANNs log-mel `input_values` [B, T, 64] in dB, plus a frame `attention_mask` [B, T].

    Periodic Hann window of n_fft samples, centred frames with reflect padding (T = 1 + N // hop),
    power spectrum, 64 Slaney mel bands, 10*log10(max(x, 1e-10)). The learned `bn0` normalisation
    stays in the model, as in PANNs. Clips of different lengths are right-padded; the mask marks
    real frames and the model never lets padding change a clip's output.

    `fixed_clip_seconds`: None (default): every clip keeps its own length. Seconds: every clip is cut to its
    first `fixed_clip_seconds` s and zero-padded at the end to that length (`audio_input.fix_length`), as a
    `fusion-eval --export-classifier` probe saw its test clips; saved in preprocessor_config.json.
    """

    model_input_names = ["input_values", "attention_mask"]
    torch_front_end = True  # __call__(..., device=) computes the batch there; clips may be tensors on it

    def __init__(
        self,
        feature_size=64,
        sampling_rate=16000,
        n_fft=512,
        hop_length=160,
        f_min=50.0,
        f_max=8000.0,
        padding_value=-100.0,
        return_attention_mask=True,
        fixed_clip_seconds=None,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.fixed_clip_seconds = check_fixed_clip_seconds(fixed_clip_seconds, type(self).__name__)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.f_min = f_min
        self.f_max = f_max
        # `window` and `mel_filters` are derived, and SequenceFeatureExtractor.to_dict() leaves them out.
        self.window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
        self.mel_filters = slaney_mel_filters(sampling_rate, n_fft, feature_size, f_min, f_max)

    @classmethod
    def for_sampling_rate(cls, sampling_rate):
        """The published PANNs front end for 16 kHz (Cnn14_16k) or 32 kHz (Cnn14)."""
        if sampling_rate not in PANNS_FRONT_ENDS:
            raise ValueError(f"PANNs CNN14 checkpoints exist for {sorted(PANNS_FRONT_ENDS)} Hz, not {sampling_rate}")
        n_fft, hop, f_min, f_max = PANNS_FRONT_ENDS[sampling_rate]
        return cls(sampling_rate=sampling_rate, n_fft=n_fft, hop_length=hop, f_min=f_min, f_max=f_max)

    @property
    def min_samples(self):
        """Shortest clip CNN14 accepts: 32 frames."""
        return (MIN_FRAMES - 1) * self.hop_length

    def log_mel(self, clip):
        """[N] float -> [1 + N // hop, 64] float32 log-mel in dB."""
        padded = np.pad(clip.astype(np.float64), self.n_fft // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop_length]
        spectrum = np.fft.rfft(frames * self.window, axis=-1)
        power = spectrum.real**2 + spectrum.imag**2
        return (10.0 * np.log10(np.maximum(power @ self.mel_filters.T, 1e-10))).astype(np.float32)

    def torch_log_mel(self, clips, device, dtype=torch.float32):
        """List of [N_i] float32 clips -> (log-mel [B, T, 64] float32 dB on `device`, frames past a clip's
        1 + N_i // hop set to `padding_value`; mask [B, T] int32). The batched twin of `log_mel`."""
        waves, lengths = batch_waves(clips, device, dtype)
        frames = reflect_pad(waves, lengths, self.n_fft // 2).unfold(1, self.n_fft, self.hop_length)
        mel = filterbank(frames, on_device(self.window, device, dtype), on_device(self.mel_filters.T, device, dtype))
        log_mel = 10.0 * torch.log10(mel.clamp_min(1e-10))
        mask = frame_mask(1 + lengths // self.hop_length, log_mel.shape[1])
        return pad_past_end(log_mel, mask, self.padding_value), mask

    def __call__(self, raw_audio, sampling_rate=None, return_tensors=None, return_attention_mask=None, device=None,
                 computation_dtype=torch.float32, **kwargs):
        """One clip, a list of clips or a [B, N] array of mono float audio -> BatchFeature.

        device: None (default) computes each clip in float64 numpy, the reference. A torch device ("cpu",
        "cuda", ...) computes the whole batch there in `computation_dtype` (float32; float64 for exact parity
        checks) and, with return_tensors="pt", leaves the tensors on it. float32 differs from the reference
        by <= 1e-3 dB in mel bins within 60 dB of their frame's loudest bin, more far below it (float32 FFT
        round-off; PANNs' own torch front end is float32); float64 by <= 1e-6 dB (tests/test_frontends_torch.py).
        """
        clips = mono_clips(raw_audio, sampling_rate, self.sampling_rate, self.min_samples, type(self).__name__,
                           self.fixed_clip_seconds, keep_tensors=device is not None)
        return log_mel_features(self, clips, device, computation_dtype, return_attention_mask, return_tensors)
