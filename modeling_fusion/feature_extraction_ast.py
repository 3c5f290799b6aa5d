"""AST front end: transformers' `ASTFeatureExtractor` (Kaldi fbank, 128 bins), whole clips by default;
batched torch on `device=`."""

import warnings

import numpy as np
import torch
from transformers import ASTFeatureExtractor
from transformers.audio_utils import mel_filter_bank, window_function

from .audio_input import check_fixed_clip_seconds, mono_clips, pad_frames
from .spectral import batch_waves, check_device, filterbank, frame_mask, on_device, pad_past_end, to_batch_feature

FRAME_LENGTH, FRAME_SHIFT = 400, 160  # Kaldi defaults at 16 kHz: 25 ms windows, 10 ms hop, snip_edges
FFT_LENGTH = 512  # frames zero-padded to the next power of two, as Kaldi
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07  # float32 epsilon, Kaldi's log floor
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
        fixed_clip_seconds: None (default): every clip keeps its own length. Seconds: every clip is cut to its
            first `fixed_clip_seconds` s and zero-padded at the end to that length (`audio_input.fix_length`), as a
            `fusion-eval --export-classifier` probe saw its test clips; saved in preprocessor_config.json.
        Other arguments as `ASTFeatureExtractor`.
    """

    model_input_names = ["input_values", "attention_mask"]
    torch_front_end = True  # __call__(..., device=) computes the batch there; clips may be tensors on it

    def __init__(self, pad_to_max_length=False, return_attention_mask=True, fixed_clip_seconds=None, **kwargs):
        with warnings.catch_warnings():
            # Kaldi's own 128-bin bank at 16 kHz has an empty filter (bin 3, between two FFT bins); expected.
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            super().__init__(return_attention_mask=return_attention_mask, **kwargs)
            if not hasattr(self, "mel_filters"):  # torchaudio computes the numpy fbank; the torch path needs these
                self.mel_filters = mel_filter_bank(
                    num_frequency_bins=FFT_LENGTH // 2 + 1, num_mel_filters=self.num_mel_bins, min_frequency=20,
                    max_frequency=self.sampling_rate // 2, sampling_rate=self.sampling_rate, norm=None,
                    mel_scale="kaldi", triangularize_in_mel_space=True,
                )
                self.window = window_function(FRAME_LENGTH, "hann", periodic=False)
        self.pad_to_max_length = pad_to_max_length
        self.fixed_clip_seconds = check_fixed_clip_seconds(fixed_clip_seconds, type(self).__name__)

    @property
    def min_samples(self):
        """Shortest clip: one patch of 16 frames = 2800 samples (0.175 s)."""
        return FRAME_LENGTH + (PATCH_FRAMES - 1) * FRAME_SHIFT

    def log_fbank(self, clip):
        """[N] float32 -> [1 + (N - 400) // 160, num_mel_bins] float32 log-mel fbank, not normalised."""
        frames = 1 + (len(clip) - FRAME_LENGTH) // FRAME_SHIFT
        return self._extract_fbank_features(clip, max_length=frames)

    def _clips(self, raw_audio, sampling_rate, keep_tensors=False):
        return mono_clips(raw_audio, sampling_rate, self.sampling_rate, self.min_samples, type(self).__name__,
                          self.fixed_clip_seconds, keep_tensors)

    def torch_log_fbank(self, clips, device, dtype=torch.float32):
        """List of [N_i] float32 clips -> (log-mel fbank [B, T, num_mel_bins] float32 on `device`, not normalised,
        zero past a clip's 1 + (N_i - 400) // 160 frames; mask [B, T] int32).

        The batched twin of transformers' numpy fbank (`audio_utils.spectrogram` as ASTFeatureExtractor calls it
        without torchaudio): per frame DC removal, pre-emphasis 0.97 within the frame, symmetric Hann of 400,
        512-point FFT, power, Kaldi mel bank, log with a float32-epsilon floor.
        """
        waves, lengths = batch_waves(clips, device, dtype)
        frames = waves.unfold(1, FRAME_LENGTH, FRAME_SHIFT)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        emphasised = torch.cat([frames[..., :1] * (1 - PREEMPHASIS), frames[..., 1:] - PREEMPHASIS * frames[..., :-1]], -1)
        mel = filterbank(emphasised, on_device(self.window, device, dtype), on_device(self.mel_filters, device, dtype),
                         n_fft=FFT_LENGTH)
        fbank = torch.log(mel.clamp_min(MEL_FLOOR))
        mask = frame_mask(1 + (lengths - FRAME_LENGTH) // FRAME_SHIFT, fbank.shape[1])
        return pad_past_end(fbank, mask, 0.0), mask

    def _torch_features(self, clips, device, dtype):
        """The torch path of __call__: (input_values [B, T, bins], attention_mask [B, T]) on `device`."""
        fbank, mask = self.torch_log_fbank(clips, device, dtype)
        if self.pad_to_max_length:  # zeros before normalising, or truncation, to max_length frames; all real
            fbank = torch.nn.functional.pad(fbank[:, : self.max_length], (0, 0, 0, max(0, self.max_length - fbank.shape[1])))
            mask = torch.ones(fbank.shape[:2], dtype=torch.int32, device=fbank.device)
        if self.do_normalize:
            fbank = self.normalize(fbank)
        return pad_past_end(fbank, mask, self.padding_value), mask

    def __call__(self, raw_audio, sampling_rate=None, return_tensors=None, return_attention_mask=None, device=None,
                 computation_dtype=torch.float32, **kwargs):
        """One clip, a list of clips or a [B, N] array of mono float audio -> BatchFeature.

        device: None (default) computes each clip with transformers' fbank, the reference. A torch device ("cpu",
        "cuda", ...) computes the whole batch there in `computation_dtype` (float32; float64 for parity checks)
        and, with return_tensors="pt", leaves the tensors on it. It follows transformers' numpy fbank (used
        when torchaudio is not installed): float32 within 1e-3 log units in mel bins within 60 dB of their frame's
        loudest bin, 1e-2 below (float32 FFT round-off); float64 within 1e-6 (tests/test_frontends_torch.py).
        """
        clips = self._clips(raw_audio, sampling_rate, keep_tensors=device is not None)
        if device is not None:
            values, mask = self._torch_features(clips, check_device(device, computation_dtype), computation_dtype)
            return to_batch_feature(self, values, mask, return_attention_mask, return_tensors)
        if self.pad_to_max_length:
            fbanks = [self._extract_fbank_features(clip, max_length=self.max_length) for clip in clips]
        else:
            fbanks = [self.log_fbank(clip) for clip in clips]
        if self.do_normalize:
            fbanks = [self.normalize(fbank) for fbank in fbanks]
        values, mask = pad_frames(fbanks, self.padding_value)
        return to_batch_feature(self, values, mask, return_attention_mask, return_tensors)

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
        std = float(np.sqrt(sum_sq / count))
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise ValueError(
                f"fit_normalization: the clips' fbank has mean {mean} and std {std} (e.g. all silence or constant), "
                "so normalising by it would give non-finite features; fit on real training audio."
            )
        self.mean, self.std = float(mean), std
        return self
