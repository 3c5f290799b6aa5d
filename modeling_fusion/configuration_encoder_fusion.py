"""Configuration of the multilayer fusion of any transformers audio encoder (wav2vec2, HuBERT, WavLM,
data2vec-audio, Whisper's encoder, CLAP's audio tower, AST, ...)."""

from transformers import AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .chunking import ChunkSpec
from .configuration_ast import CHUNK_CONTEXT_PATCHES, patch_chunk_spec
from .fusion import AST_POOLINGS, POOLINGS, FusionConfigMixin

# Encoder families whose hidden states are not plain [B, T, D] sequences of one frame each.
WHISPER, CLAP, AST = "whisper", "clap_audio_model", "audio-spectrogram-transformer"


def resolve_encoder_config(encoder_config):
    """A config object, or a dict with `model_type`, -> the encoder's `PretrainedConfig`.

    A full CLAP config (text + audio) gives its audio tower's `ClapAudioConfig`.
    """
    if isinstance(encoder_config, dict):
        if "model_type" not in encoder_config:
            raise ValueError("encoder_config needs a `model_type` (e.g. 'wav2vec2', 'whisper'), as in a config.json")
        values = {key: value for key, value in encoder_config.items() if key != "model_type"}
        encoder_config = CONFIG_MAPPING[encoder_config["model_type"]](**values)
    if not isinstance(encoder_config, PretrainedConfig):
        raise ValueError(f"encoder_config must be a PretrainedConfig or a dict, got {type(encoder_config).__name__}")
    if encoder_config.model_type == "clap":
        encoder_config = encoder_config.audio_config
    return encoder_config


class EncoderFusionConfig(FusionConfigMixin, PretrainedConfig):
    """The paper's multilayer fusion (Niizumi et al., EUSIPCO 2022) on a transformers audio encoder.

    Args:
        encoder_config: the encoder's config (`PretrainedConfig` or its dict with `model_type`; any
            audio model type; a full CLAP config keeps its audio tower). Required. Its layer drop is
            set to 0 so that a forward always runs every layer (as s3prl does).
        fusion_layers: hidden states fused, numbered as the encoder's `hidden_states`: 0 is the input
            to the first block, l the output of block l (CLAP: of stage l) before any final norm.
            Default: the last layer.
        pooling: clip pooling over real frames: "mean+max" (the paper's sum of temporal mean and
            max), "mean" or "max"; AST also "cls+dist" ((CLS + DIST) / 2 of each fused layer).
        embedding_type: "fusion" (the paper's method) or "plain" (the last layer alone, pooled the same
            way: the baseline row of the paper's tables).
        classifier_input: what the audio-classification head reads: "fusion" or "plain".

    Raises ValueError for a missing encoder config, layers outside 0..num_layers or an unknown pooling.
    """

    model_type = "encoder-fusion"
    sub_configs = {"encoder_config": AutoConfig}
    has_no_defaults_at_init = True

    def __init__(self, encoder_config=None, fusion_layers=None, pooling="mean+max", embedding_type="fusion",
                 classifier_input="fusion", **kwargs):
        if encoder_config is None:
            raise ValueError("EncoderFusionConfig needs encoder_config (the audio encoder's config); build one with "
                             "EncoderFusionModel.from_encoder_pretrained(name_or_path, fusion_layers=[...])")
        self.encoder_config = resolve_encoder_config(encoder_config)
        for name in ("layerdrop", "encoder_layerdrop"):
            if getattr(self.encoder_config, name, None):
                setattr(self.encoder_config, name, 0.0)
        self.fusion_layers = [self.num_layers] if fusion_layers is None else fusion_layers
        self.pooling = pooling
        self.embedding_type = embedding_type
        self.classifier_input = classifier_input
        attention = self.encoder_config._attn_implementation
        super().__init__(**kwargs)
        if self.encoder_config._attn_implementation is None:  # the base class resets sub-configs' choice
            self.encoder_config._attn_implementation = attention

    def fusion_layer_range(self):
        count = self.num_layers
        return 0, count, f"hidden-state numbers 0-{count} of this {self.encoder_type} encoder"

    @property
    def poolings(self):
        return AST_POOLINGS if self.encoder_type == AST else POOLINGS

    @property
    def encoder_type(self):
        return self.encoder_config.model_type

    @property
    def num_layers(self):
        """Blocks (CLAP: stages) of the encoder; `hidden_states` has num_layers + 1 entries."""
        if self.encoder_type == CLAP:
            return len(self.encoder_config.depths)
        return self.encoder_config.num_hidden_layers

    @property
    def layer_sizes(self):
        """Per-frame feature size of each hidden state (index 0 = the input to the first block)."""
        encoder = self.encoder_config
        if self.encoder_type == AST:
            frequency_patches = (encoder.num_mel_bins - encoder.patch_size) // encoder.frequency_stride + 1
            return [encoder.hidden_size * frequency_patches] * (self.num_layers + 1)
        if self.encoder_type == CLAP:  # channels x frequency of each stage map after undoing the mel-to-image fold
            stride = encoder.patch_stride
            stride = stride[0] if isinstance(stride, (list, tuple)) else stride
            frequency = encoder.spec_size // stride // (encoder.spec_size // encoder.num_mel_bins)
            stages = [min(layer, self.num_layers - 1) for layer in range(self.num_layers + 1)]
            return [encoder.patch_embeds_hidden_size * 2**s * (frequency // 2**s) for s in stages]
        width = encoder.d_model if self.encoder_type == WHISPER else encoder.hidden_size
        return [width] * (self.num_layers + 1)

    @property
    def layer_embedding_size(self):
        """Size of one fused layer's clip embedding under `pooling`, per layer."""
        if self.pooling == "cls+dist":
            return [self.encoder_config.hidden_size] * (self.num_layers + 1)
        return self.layer_sizes

    def chunk_spec(self, feature_extractor):
        """How fused frames sit on the waveform, for `chunking.embed_long_clip` (clips longer than its
        `chunk_length_s`). Self-attention sees the whole input, so chunked frames (2 s of context per side)
        approximate a whole-clip pass. Raises ValueError for CLAP, whose extractor fits every clip into 10 s."""
        rate, encoder = feature_extractor.sampling_rate, self.encoder_config
        from_frames = self.pooling in POOLINGS
        if self.encoder_type == CLAP:
            raise ValueError("CLAP's feature extractor fits every clip into 10 s (repeat-padded or cropped), so a "
                             "long clip cannot be chunked; pass chunk_length_s=0 to embed it as CLAP sees it")
        if self.encoder_type == AST:  # patches on Kaldi fbank frames, windows of the position grid (10.24 s)
            window = (encoder.max_length - encoder.patch_size) // encoder.time_stride + 1
            context = min(CHUNK_CONTEXT_PATCHES, window // 4)
            return patch_chunk_spec(encoder.patch_size, encoder.time_stride, window, context, from_frames, from_frames)
        if self.encoder_type == WHISPER:  # mel frame t centred on sample t * hop; encoder frame j on mel frame 2j
            hop = feature_extractor.hop_length
            return ChunkSpec(
                unit_samples=2 * hop, frames_per_unit=1, context_units=-(-rate // hop),  # 2 s
                tail_samples=max(feature_extractor.n_fft // 2 - hop, 0), window_units=encoder.max_source_positions,
                first_centre=0.0, num_frames=lambda n: -(-(-(-n // hop)) // 2), exact=False,
                pooled_from_frames=True, layers_from_frames=True)
        kernels, strides = getattr(encoder, "conv_kernel", None), getattr(encoder, "conv_stride", None)
        if kernels is None or strides is None:
            raise ValueError(f"no chunking description for {self.encoder_type} encoders; pass chunk_length_s=0")
        hop, field, step = 1, 1, 1
        for kernel, stride in zip(kernels, strides):  # the convolutional front end's hop and receptive field
            field, step, hop = field + (kernel - 1) * step, step * stride, hop * stride

        def num_frames(n):
            for kernel, stride in zip(kernels, strides):
                n = max((n - kernel) // stride + 1, 0)
            return n

        return ChunkSpec(
            unit_samples=hop, frames_per_unit=1, context_units=-(-2 * rate // hop), tail_samples=max(field - hop, 0),
            window_units=None, first_centre=(field - 1) / 2, num_frames=num_frames, exact=False,
            pooled_from_frames=True, layers_from_frames=True)

    @property
    def output_layers(self):
        """The layers in `last_hidden_state` and `pooler_output`: `fusion_layers`, or the last one for "plain"."""
        return [self.num_layers] if self.embedding_type == "plain" else self.fusion_layers

    @property
    def hidden_size(self):
        """Size of `pooler_output`: the chosen layers' clip embeddings concatenated."""
        return sum(self.layer_embedding_size[layer] for layer in self.output_layers)
