"""VGGish log-mel front end (TF vggish_input / mel_features), computed batched in torch (on `device=` in one transform)."""

import math

import numpy as np
import torch
from transformers import SequenceFeatureExtractor

from .audio_input import check_fixed_clip_seconds, mono_clips
from .spectral import batch_waves, check_device, filterbank, hz_to_htk_mel, on_device, pad_past_end, to_batch_feature

FRAMES_PER_BLOCK = 1024  # frames transformed at once: float64 buffers of ~4 MB stay in cache and reused memory


def htk_mel_filters(sampling_rate, n_fft, n_mels, f_min, f_max):
    """[n_fft // 2 + 1, n_mels] VGGish mel matrix: triangles linear in mel, peak 1, DC row zero."""
    bin_mels = hz_to_htk_mel(np.linspace(0.0, sampling_rate / 2, n_fft // 2 + 1))
    edges = np.linspace(hz_to_htk_mel(f_min), hz_to_htk_mel(f_max), n_mels + 2)
    rising = (bin_mels[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[None, 2:] - bin_mels[:, None]) / (edges[2:] - edges[1:-1])
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters[0] = 0.0
    return filters


class VGGishFeatureExtractor(SequenceFeatureExtractor):
    """Waveform -> VGGish log-mel examples `input_values` [B, E, 96, 64] + example `attention_mask` [B, E].

    16 kHz audio is cut into 400-sample frames every 160 samples (no centring, incomplete tail frames
    dropped), windowed by a periodic Hann, zero-padded to a 512-point FFT; the magnitude goes through
    64 HTK mel bands (125-7500 Hz) and log(x + 0.01). Frames are grouped into non-overlapping 0.96 s
    examples of 96 frames; an incomplete trailing example is dropped, as in the reference.

    The same front end serves YAMNet through parameters: `log_offset` 0.001, examples ("patches")
    every `example_hop_frames` = 48 frames (0.48 s), and `pad_end=True`, which zero-pads the audio
    to a whole number of hops instead of dropping the tail (YAMNet's `features.pad_waveform`).

    Short audio: a clip under one example (15600 samples, 0.975 s) is zero-padded at its end to
    15600 samples and so gives exactly one example (the reference would return none). This is what
    the paper's pipeline does too, padding every clip to the task's length. Clips with fewer examples
    than the longest in the batch are filled with `padding_value`, and the mask marks real examples.
    Window, FFT and magnitude in float64 like the numpy reference, mel projection and log in float32.

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
        window_length=400,
        hop_length=160,
        f_min=125.0,
        f_max=7500.0,
        log_offset=0.01,
        example_frames=96,
        example_hop_frames=None,
        pad_end=False,
        padding_value=0.0,
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
        self.window_length = window_length
        self.hop_length = hop_length
        self.f_min = f_min
        self.f_max = f_max
        self.log_offset = log_offset
        self.example_frames = example_frames
        self.example_hop_frames = example_hop_frames or example_frames
        self.pad_end = bool(pad_end)
        # `window` and `mel_filters` are derived, and SequenceFeatureExtractor.to_dict() leaves them out.
        n = torch.arange(window_length, dtype=torch.float64)
        self.window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / window_length)  # periodic Hann
        self.mel_filters = torch.from_numpy(
            htk_mel_filters(sampling_rate, self.n_fft, feature_size, f_min, f_max)
        ).float()

    @property
    def n_fft(self):
        """The smallest power of two holding a frame (512 for 400 samples)."""
        return 2 ** math.ceil(math.log2(self.window_length))

    @property
    def example_samples(self):
        """Samples in one example: 15600 (0.975 s) for 96 frames of 400 samples at hop 160."""
        return (self.example_frames - 1) * self.hop_length + self.window_length

    def num_examples(self, num_samples):
        """Examples from a clip of `num_samples` (at least 1: short clips are zero-padded); with
        `pad_end`, a partial hop past the last whole example adds one more example."""
        hop_samples = self.example_hop_frames * self.hop_length
        extra = max(num_samples - self.example_samples, 0)
        return 1 + (-(-extra // hop_samples) if self.pad_end else extra // hop_samples)

    def log_mel(self, frames):
        """[b, T, 400] float32 samples (any strides) -> [b, T, 64] float32 log-mel.

        The FFT and magnitude are float64 like the reference. The mel projection sums non-negative
        terms, so float32 there costs at most ~1e-6 relative (= absolute after the log).
        """
        padded = torch.zeros(*frames.shape[:-1], self.n_fft, dtype=torch.float64)
        torch.mul(frames, self.window, out=padded[..., : self.window_length])  # exact float64 product
        magnitude = torch.linalg.vector_norm(torch.view_as_real(torch.fft.rfft(padded)), dim=-1)
        return torch.log_(magnitude.float() @ self.mel_filters + self.log_offset)

    def examples(self, clips):
        """List of 1-D float32 arrays -> (values [B, E, 96, 64] float32, mask [B, E] int32).

        Clips with the same number of examples are framed together and transformed in blocks of
        about FRAMES_PER_BLOCK frames: faster than one large transform, and bounded memory.
        Overlapping examples (`example_hop_frames` < `example_frames`) share their frames' log-mel.
        """
        counts = [self.num_examples(len(clip)) for clip in clips]
        longest, frames_per_example, hop = max(counts), self.example_frames, self.example_hop_frames
        values = torch.full((len(clips), longest, frames_per_example, self.feature_size), float(self.padding_value))
        for count in sorted(set(counts)):
            rows = [row for row, n in enumerate(counts) if n == count]
            num_frames = (count - 1) * hop + frames_per_example
            samples = (num_frames - 1) * self.hop_length + self.window_length
            waves = torch.zeros(len(rows), samples)
            for index, row in enumerate(rows):
                clip = clips[row][:samples]
                waves.numpy()[index, : len(clip)] = clip  # a numpy copy: a read-only clip (np.frombuffer) is fine
            frames = waves.unfold(1, self.window_length, self.hop_length)  # [b, num_frames, 400], a view
            log_mel = torch.empty(len(rows), num_frames, self.feature_size)
            row_step = max(1, FRAMES_PER_BLOCK // num_frames)
            for first in range(0, len(rows), row_step):
                last = min(first + row_step, len(rows))
                step = max(1, FRAMES_PER_BLOCK // (last - first))
                for start in range(0, num_frames, step):
                    log_mel[first:last, start : start + step] = self.log_mel(frames[first:last, start : start + step])
            values[rows, :count] = log_mel.unfold(1, frames_per_example, hop).transpose(2, 3)  # [b, count, 96, 64]
        mask = np.arange(longest)[None, :] < np.array(counts)[:, None]
        return values.numpy(), mask.astype(np.int32)

    def torch_examples(self, clips, device, dtype=torch.float32):
        """The `device=` twin of `examples`: every clip's frames in one transform on `device`, FFT and magnitude
        in `dtype`, mel projection and log in float32 -> (values [B, E, 96, 64] float32, mask [B, E] int32) there."""
        counts = [self.num_examples(len(clip)) for clip in clips]
        longest, frames_per_example, hop = max(counts), self.example_frames, self.example_hop_frames
        num_frames = (longest - 1) * hop + frames_per_example
        samples = (num_frames - 1) * self.hop_length + self.window_length
        waves, _ = batch_waves([clip[:samples] for clip in clips], device, dtype)
        waves = torch.nn.functional.pad(waves, (0, samples - waves.shape[1]))  # short clips: zeros, as `examples`
        frames = waves.unfold(1, self.window_length, self.hop_length)
        mel = filterbank(frames, on_device(self.window.numpy(), device, dtype),
                         on_device(self.mel_filters.numpy(), device, torch.float32), n_fft=self.n_fft, magnitude=True)
        log_mel = torch.log(mel + self.log_offset)
        values = log_mel.unfold(1, frames_per_example, hop).transpose(2, 3)  # [B, longest, 96, 64]
        mask = (torch.arange(longest)[None, :] < torch.tensor(counts)[:, None]).to(device=device, dtype=torch.int32)
        return pad_past_end(values, mask, self.padding_value), mask

    def __call__(self, raw_audio, sampling_rate=None, return_tensors=None, return_attention_mask=None, device=None,
                 computation_dtype=torch.float32, **kwargs):
        """One clip, a list of clips or a [B, N] array of mono float audio -> BatchFeature.

        device: None (default) computes on the CPU in blocks (`examples`, float64 FFT), the reference. A torch
        device ("cpu", "cuda", ...) transforms the whole batch there at once in `computation_dtype` (float32;
        float64 for exact parity checks) and, with return_tensors="pt", leaves the tensors on it. float32 differs
        from the reference by <= 1e-3 log units with log_offset 0.01 (1e-2 with YAMNet's 0.001: float32 FFT
        round-off in near-empty bands), float64 by <= 1e-6 (tests/test_frontends_torch.py).
        """
        clips = mono_clips(raw_audio, sampling_rate, self.sampling_rate, 1, type(self).__name__,
                           self.fixed_clip_seconds, keep_tensors=device is not None)
        if device is None:
            values, mask = self.examples(clips)
        else:
            values, mask = self.torch_examples(clips, check_device(device, computation_dtype), computation_dtype)
        return to_batch_feature(self, values, mask, return_attention_mask, return_tensors)
