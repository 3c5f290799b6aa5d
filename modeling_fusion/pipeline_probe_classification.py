"""`pipeline("audio-classification")` of a `fusion-eval --export-classifier` folder (shipped in those folders only).

The probe was trained and tested on clips fixed to the task's `unit_sec` (test clips: their first `unit_sec`
seconds, zero-padded at the end), read by `audio_input.load_audio`. This pipeline applies the same two steps
to every input before the folder's own feature extractor, so the folder predicts what the probe predicted
whatever that extractor is (this package's, or a transformers encoder's own, which cannot fix clip lengths):

    classify = pipeline("audio-classification", model=PROBE_DIR, trust_remote_code=True)
    classify("clip.wav", top_k=3)      # or an array at the model's rate, or {"array", "sampling_rate"} at any rate
"""

from transformers import AudioClassificationPipeline

from .audio_input import fix_length, load_audio


class ProbeClassificationPipeline(AudioClassificationPipeline):
    """Audio -> [{"label", "score"}]; the clip rule is `model.config.probe_clip` ({"seconds", "crop": "start",
    "pad": "zeros at the end"}). Inputs: whatever `load_audio` takes (files and bytes with soundfile, dicts
    at any rate resampled with soxr HQ: no torchaudio needed); a bare array is taken at the model's rate."""

    def preprocess(self, inputs):
        rate = self.feature_extractor.sampling_rate
        seconds = self.model.config.probe_clip["seconds"]
        wave = load_audio(inputs, rate, name=None if isinstance(inputs, str) else "pipeline input")
        return super().preprocess(fix_length(wave, int(round(seconds * rate))))
