"""AST front end: transformers' `ASTFeatureExtractor` (Kaldi fbank, 128 bins), whole clips by default."""

import warnings

import numpy as np
from transformers import ASTFeatureExtractor, BatchFeature

from .audio_input import mono_clips, pad_frames

FRAME_LENGTH, FRAME_SHIFT = 400, 160  # Kaldi defaults at 16 kHz: 25 ms windows, 10 ms hop, snip_edges
PATCH_FRAMES = 16  # one AST patch spans 16 frames: the shortest input the model accepts


class AstFusionFeatureExtractor(ASTFeatureExtractor):
    """Waveform (16 kHz mono float) -> normalised log-mel fbank `input_values` [B, T, 128] + `attention_mask`.

    The fbank is transformers' `ASTFeatureExtractor._extract_fbank_features` (torchaudio's Kaldi fbank when
    torchaudio is installed, else transformers' numpy port of it); T = 1 + (N - 400) // 160 frames.
    Normalisation is (fbank - mean) / (2 * std), AudioSet statistics by default.

    Args:
        pad_to_max_length: False (default, the paper's mode): every clip keeps its own length; a batch is
            right-padded with `padding_value` and `attention_mask` [B, T] marks real frames. True: the
            standard AST behaviour, zero-pad (before normalising) or truncate every clip to `max_length`.
        Other arguments as `ASTFeatureExtractor`.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(self, pad_to_max_length=False, return_attention_mask=True, **kwargs):
        with warnings.catch_warnings():
            # Kaldi's own 128-bin bank at 16 kHz has an empty filter (bin 3, between two FFT bins); expected.
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            super().__init__(return_attention_mask=return_attention_mask, **kwargs)
        self.pad_to_max_length = pad_to_max_length

    @property
    def min_samples(self):
        """Shortest clip: one patch of 16 frames = 2800 samples (0.175 s)."""
        return FRAME_LENGTH + (PATCH_FRAMES - 1) * FRAME_SHIFT

    def log_fbank(self, clip):
        """[N] float32 -> [1 + (N - 400) // 160, num_mel_bins] float32 log-mel fbank, not normalised."""
        frames = 1 + (len(clip) - FRAME_LENGTH) // FRAME_SHIFT
        return self._extract_fbank_features(clip, max_length=frames)

    def _clips(self, raw_audio, sampling_rate):
        return mono_clips(raw_audio, sampling_rate, self.sampling_rate, self.min_samples, type(self).__name__)

    def __call__(self, raw_audio, sampling_rate=None, return_tensors=None, return_attention_mask=None, **kwargs):
        """One clip, a list of clips or a [B, N] array of mono float audio -> BatchFeature."""
        clips = self._clips(raw_audio, sampling_rate)
        if self.pad_to_max_length:
            fbanks = [self._extract_fbank_features(clip, max_length=self.max_length) for clip in clips]
        else:
            fbanks = [self.log_fbank(clip) for clip in clips]
        if self.do_normalize:
            fbanks = [self.normalize(fbank) for fbank in fbanks]
        values, mask = pad_frames(fbanks, self.padding_value)
        features = {"input_values": values}
        if self.return_attention_mask if return_attention_mask is None else return_attention_mask:
            features["attention_mask"] = mask
        return BatchFeature(features, tensor_type=return_tensors)

    def fit_normalization(self, clips, sampling_rate):
        """Set `mean` and `std` to statistics of a training set, as the paper's evaluation does (EVAR).

        clips: an iterable of 1-D float clips at `sampling_rate` (16000); EVAR uses up to 5000 training
        clips at the task's fixed length. The statistics are one scalar mean and one population std over
        every bin and frame of every clip's unnormalised fbank (exact, merged per clip in float64; EVAR's
        running mean drops its first batch). Returns self; `save_pretrained(folder)` then stores them in
        preprocessor_config.json:

            extractor.fit_normalization(train_clips, sampling_rate=16000).save_pretrained(model_dir)
        """
        count, mean, sum_sq = 0, 0.0, 0.0
        for clip in clips:
            (clip,) = self._clips(clip, sampling_rate)
            fbank = self.log_fbank(clip).astype(np.float64)
            n, clip_mean = fbank.size, float(fbank.mean())
            clip_sum_sq = float(((fbank - clip_mean) ** 2).sum())
            delta = clip_mean - mean
            total = count + n
            mean += delta * n / total
            sum_sq += clip_sum_sq + delta**2 * count * n / total
            count = total
        if count == 0:
            raise ValueError("fit_normalization: `clips` is empty; give at least one training clip.")
        self.mean, self.std = float(mean), float(np.sqrt(sum_sq / count))
        return self
