"""What an exported graph takes, per backbone: the model's main input, its axes and units, and why its
length must stay fixed where it must."""

from dataclasses import dataclass

AST_FIXED = ("AST adapts its 12 x 101 position embeddings to each clip length with a Python branch (a centre "
             "crop below 101 time patches, bilinear interpolation above), so one graph holds one length")
YAMNET_FIXED = ("YAMNet's TF 'SAME' padding puts 1 or 2 frames after a strided layer's input depending on the "
                "parity of its length, a Python branch per layer, so one graph holds one patch count")
WHISPER_FIXED = "Whisper's encoder always takes 30 s (3000 mel frames); WhisperFeatureExtractor pads to it"
CLAP_FIXED = "CLAP's feature extractor fits every clip into 10 s (1001 mel frames), so the length never varies"


@dataclass(frozen=True)
class GraphInput:
    """The exported graph's one input.

    name: the model's keyword ("input_values" or "input_features"); axes: per dimension a symbolic name or
    the fixed size; time_axis: the axis that grows with the clip; units: what the values are; fixed_length:
    why the time axis cannot vary between calls ("" where it can); default_seconds: the clip length traced
    when none is given."""

    name: str
    axes: tuple
    time_axis: int
    units: str
    fixed_length: str = ""
    default_seconds: float = 1.0


def graph_input(config):
    """GraphInput for a model config of this package. Raises ValueError for a model type it does not know."""
    kind = config.model_type
    if kind == "cnn14-fusion":
        return GraphInput("input_values", ("batch", "frames", config.num_mel_bins), 1,
                          "PANNs log-mel in dB (10 log10 of mel power, floor -100), 10 ms frames (Cnn14FeatureExtractor)")
    if kind == "efficientat-fusion":
        return GraphInput("input_values", ("batch", "frames", config.num_mel_bins), 1,
                          "EfficientAT's normalised log-mel ((log(mel + 1e-5) + 4.5) / 5), 10 ms frames")
    if kind == "ast-fusion":
        return GraphInput("input_values", ("batch", "frames", config.ast_config["num_mel_bins"]), 1,
                          "Kaldi fbank, normalised with AudioSet's mean and std, 10 ms frames", AST_FIXED, 10.24)
    if kind == "vggish-fusion":
        return GraphInput("input_values", ("batch", "examples", 96, config.num_mel_bins), 1,
                          "VGGish log-mel examples (log(mel + 0.01)), 0.96 s each, no overlap", default_seconds=2.0)
    if kind == "yamnet-fusion":
        return GraphInput("input_values", ("batch", "patches", config.patch_frames, config.num_mel_bins), 1,
                          "YAMNet log-mel patches (log(mel + 0.001)), 0.96 s every 0.48 s", YAMNET_FIXED)
    if kind == "encoder-fusion":
        return _encoder_input(config)
    raise ValueError(f"model type {kind!r} is not a fusion model of this package; nothing to export")


def _encoder_input(config):
    from ..configuration_encoder_fusion import AST, CLAP, WHISPER

    encoder = config.encoder_config
    if config.encoder_type == WHISPER:
        return GraphInput("input_features", ("batch", encoder.num_mel_bins, 2 * encoder.max_source_positions), 2,
                          "Whisper log-mel (WhisperFeatureExtractor), 10 ms frames, always 30 s; the graph has no "
                          "attention mask, so all 1500 frames count, padding included (the torch model without "
                          "attention_mask)", WHISPER_FIXED, 30.0)
    if config.encoder_type == CLAP:
        return GraphInput("input_features", ("batch", 1, 1001, encoder.num_mel_bins), 2,
                          "CLAP log-mel (ClapFeatureExtractor), 10 s", CLAP_FIXED, 10.0)
    if config.encoder_type == AST:
        return GraphInput("input_values", ("batch", encoder.max_length, encoder.num_mel_bins), 1,
                          "Kaldi fbank (ASTFeatureExtractor), padded to max_length", AST_FIXED, encoder.max_length / 100)
    return GraphInput("input_values", ("batch", "samples"), 1, "waveform as the encoder's feature extractor "
                      "returns it (wav2vec2 family: zero-mean, unit-variance per clip)")
