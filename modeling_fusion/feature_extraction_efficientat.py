"""EfficientAT log-mel front end (pre-emphasis, STFT, Kaldi mel bank, fixed normalisation): numpy reference,
batched torch on `device=`."""

import numpy as np
import torch
from transformers import SequenceFeatureExtractor

from .audio_input import check_fixed_clip_seconds, mono_clips
from .spectral import (batch_waves, filterbank, frame_mask, hz_to_htk_mel, log_mel_features, on_device, pad_past_end,
                       reflect_pad)

PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
NORM_SHIFT, NORM_SCALE = 4.5, 5.0
SILENCE = float((np.log(LOG_OFFSET) + NORM_SHIFT) / NORM_SCALE)  # the value of digital silence, -1.40258


def kaldi_mel_filters(sampling_rate, n_fft, n_mels, f_min, f_max):
    """[n_mels, n_fft // 2 + 1] Kaldi mel bank: triangles in mel with peak 1, no area normalisation,
    evaluated at bins k * rate / n_fft for k < n_fft / 2, plus an all-zero Nyquist column."""
    low, high = hz_to_htk_mel(f_min), hz_to_htk_mel(f_max)
    edges = low + (high - low) / (n_mels + 1) * np.arange(n_mels + 2)
    bins = hz_to_htk_mel(np.arange(n_fft // 2) * sampling_rate / n_fft)[None, :]
    rising = (bins - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    falling = (edges[2:, None] - bins) / (edges[2:, None] - edges[1:-1, None])
    filters = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(filters, ((0, 0), (0, 1)))


class EfficientATFeatureExtractor(SequenceFeatureExtractor):
    """32 kHz waveform -> normalised log-mel `input_values` [B, T, 128] (time, mel) + `attention_mask` [B, T].

    Pre-emphasis y[n] = x[n+1] - 0.97 x[n] over the whole clip (one sample shorter), centred STFT
    with reflect padding (n_fft 1024, hop 320, symmetric Hann of 800 samples centred in the frame),
    power re^2 + im^2, 128 Kaldi mel bands 0-15000 Hz, ln(x + 1e-5), then (x + 4.5) / 5.
    T = 1 + (N - 1) // 320 (100 frames per second). The model transposes to EfficientAT's
    [B, 1, mel, time] layout itself; time comes first here so that padding (and the pipelines'
    batching, which pads dim 1) runs along time. Clips of different lengths are right-padded with
    the value of silence; the mask marks real frames and the model never lets padding change a clip's output.

    `fixed_clip_seconds`: None (default): every clip keeps its own length. Seconds: every clip is cut to its
    first `fixed_clip_seconds` s and zero-padded at the end to that length (`audio_input.fix_length`), as a
    `fusion-eval --export-classifier` probe saw its test clips; saved in preprocessor_config.json.
    """

    model_input_names = ["input_values", "attention_mask"]
    torch_front_end = True  # __call__(..., device=) computes the batch there; clips may be tensors on it

    def __init__(
        self,
        feature_size=128,
        sampling_rate=32000,
        n_fft=1024,
        hop_length=320,
        win_length=800,
        f_min=0.0,
        f_max=15000.0,
        padding_value=SILENCE,
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
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.f_min = f_min
        self.f_max = f_max
        # `window` and `mel_filters` are derived, and SequenceFeatureExtractor.to_dict() leaves them out.
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / (win_length - 1))  # symmetric
        offset = (n_fft - win_length) // 2
        self.window = np.pad(hann, (offset, n_fft - win_length - offset))
        self.mel_filters = kaldi_mel_filters(sampling_rate, n_fft, feature_size, f_min, f_max)

    @property
    def min_samples(self):
        """Shortest clip: reflect padding needs more than n_fft / 2 samples after pre-emphasis (514)."""
        return self.n_fft // 2 + 2

    def log_mel(self, clip):
        """[N] float -> [1 + (N - 1) // hop, feature_size] float32 normalised log-mel."""
        clip = clip.astype(np.float64)
        emphasised = clip[1:] - PREEMPHASIS * clip[:-1]
        padded = np.pad(emphasised, self.n_fft // 2, mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop_length]
        spectrum = np.fft.rfft(frames * self.window, axis=-1)
        power = spectrum.real**2 + spectrum.imag**2
        log_mel = np.log(power @ self.mel_filters.T + LOG_OFFSET)
        return ((log_mel + NORM_SHIFT) / NORM_SCALE).astype(np.float32)

    def torch_log_mel(self, clips, device, dtype=torch.float32):
        """List of [N_i] float32 clips -> (normalised log-mel [B, T, feature_size] float32 on `device`, frames
        past a clip's 1 + (N_i - 1) // hop set to `padding_value`; mask [B, T] int32). The batched twin of `log_mel`."""
        waves, lengths = batch_waves(clips, device, dtype)
        emphasised = waves[:, 1:] - PREEMPHASIS * waves[:, :-1]  # past a clip's N_i - 1 samples: overwritten or unused
        frames = reflect_pad(emphasised, lengths - 1, self.n_fft // 2).unfold(1, self.n_fft, self.hop_length)
        mel = filterbank(frames, on_device(self.window, device, dtype), on_device(self.mel_filters.T, device, dtype))
        log_mel = torch.log(mel + LOG_OFFSET)
        mask = frame_mask(1 + (lengths - 1) // self.hop_length, log_mel.shape[1])
        return pad_past_end((log_mel + NORM_SHIFT) / NORM_SCALE, mask, self.padding_value), mask

    def __call__(self, raw_audio, sampling_rate=None, return_tensors=None, return_attention_mask=None, device=None,
                 computation_dtype=torch.float32, **kwargs):
        """One clip, a list of clips or a [B, N] array of mono float audio -> BatchFeature.

        device: None (default) computes each clip in float64 numpy, the reference. A torch device ("cpu",
        "cuda", ...) computes the whole batch there in `computation_dtype` (float32; float64 for exact parity
        checks) and, with return_tensors="pt", leaves the tensors on it. float32 differs from the reference by
        <= 1e-4 in normalised log units (= 5e-4 in ln); float64 by <= 1e-6 (tests/test_frontends_torch.py).
        """
        clips = mono_clips(raw_audio, sampling_rate, self.sampling_rate, self.min_samples, type(self).__name__,
                           self.fixed_clip_seconds, keep_tensors=device is not None)
        return log_mel_features(self, clips, device, computation_dtype, return_attention_mask, return_tensors)
