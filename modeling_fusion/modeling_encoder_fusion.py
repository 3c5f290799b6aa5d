"""Multilayer fusion of any transformers audio encoder: wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper's
encoder, CLAP's audio tower, AST, and any other encoder whose hidden states are [B, T, D] frames."""

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, ClapAudioModel, ClapModel, WhisperModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from .configuration_encoder_fusion import AST, CLAP, WHISPER, EncoderFusionConfig
from .fusion import (
    FusionModelMixin, FusionPreTrainedModel, forward_by_length, frame_features, fusion_outputs, lengths_from_mask,
)
from .classification import classification_loss


def build_encoder(encoder_config):
    """The encoder module for a config: Whisper's encoder alone, CLAP's audio tower, else `AutoModel`."""
    if encoder_config.model_type == WHISPER:
        return WhisperEncoder(encoder_config)
    if encoder_config.model_type == CLAP:
        return ClapAudioModel(encoder_config)
    return AutoModel.from_config(encoder_config)


def load_pretrained_encoder(name_or_path, **kwargs):
    """The pretrained encoder of a folder or Hub id: a Whisper checkpoint gives its encoder, a CLAP
    checkpoint its audio tower, anything else `AutoModel.from_pretrained`. kwargs go to from_pretrained."""
    model_type = AutoConfig.from_pretrained(name_or_path, **kwargs).model_type
    if model_type == WHISPER:
        return WhisperModel.from_pretrained(name_or_path, **kwargs).get_encoder()
    if model_type == "clap":
        return ClapModel.from_pretrained(name_or_path, **kwargs).audio_model
    return AutoModel.from_pretrained(name_or_path, **kwargs)


def encoder_blocks(encoder):
    """The encoder's blocks in order (the modules transformers records `hidden_states` from), or None."""
    spec = getattr(encoder, "_can_record_outputs", None) or {}
    spec = spec.get("hidden_states")
    classes = tuple(getattr(s, "target_class", s) for s in (spec if isinstance(spec, (list, tuple)) else [spec]))
    classes = tuple(c for c in classes if isinstance(c, type))
    blocks = [module for module in encoder.modules() if classes and isinstance(module, classes)]
    return blocks or None


class _StopForward(Exception):
    """Raised by a hook once the deepest needed block has run: blocks above it are not computed."""


def unfold_clap_map(feature_map, freq_ratio):
    """A CLAP (HTSAT) stage map [B, C, H, W] -> [B, C, T, F] with time on dim 2.

    `ClapAudioEncoder.reshape_mel2img` folds the time axis into `freq_ratio` chunks stacked along the
    image height (row = chunk * F + f); this undoes it as CLAP's own final-map regrouping does:
    T = freq_ratio * W frames in time order, F = H / freq_ratio frequency bins.
    """
    batch, channels, height, width = feature_map.shape
    grid = feature_map.reshape(batch, channels, freq_ratio, height // freq_ratio, width)
    return grid.permute(0, 1, 2, 4, 3).reshape(batch, channels, freq_ratio * width, height // freq_ratio)


class EncoderFusionPreTrainedModel(FusionPreTrainedModel):
    config_class = EncoderFusionConfig
    base_model_prefix = "encoder_fusion"
    _supports_sdpa = True


class EncoderFusionModel(FusionModelMixin, EncoderFusionPreTrainedModel):
    """A transformers audio encoder whose chosen hidden states are fused into one per-frame feature and
    one clip embedding (the paper's recipe: per-frame concatenation, temporal mean + max).

    Layer l is the encoder's `hidden_states[l]`: 0 the input to block 1, l the output of block l before
    any final norm (taken with forward hooks on the blocks, so transformers' swap of the last entry for
    the post-norm `last_hidden_state` does not apply; blocks above the deepest needed layer do not run).

    Inputs are the encoder's own feature extractor's output; what is a frame and what is real:
        wav2vec2 / HuBERT / WavLM / data2vec-audio, and any encoder of raw `input_values` [B, N] with
            `_get_feat_extract_output_lengths` (SEW, UniSpeech, ...; `attention_mask` [B, N] marks real
            samples): each distinct clip length runs as its own sub-batch without padding
            (`fusion.forward_by_length`), so neither group norm (wav2vec2-base) nor the positional
            convolution sees padding; a clip of N samples has `_get_feat_extract_output_lengths(N)`
            frames (20 ms each).
        Whisper (encoder only; `input_features` [B, 80, 3000], always 30 s; `attention_mask` [B, 3000]
            over mel frames): 1500 frames of 20 ms; the first ceil(n / 2) of n real mel frames are real.
        CLAP audio (`input_features` [B, 1 or 4, 1001, 64], `is_longer`): the 4-D stage maps are
            unfolded to [B, C, T, F] (`unfold_clap_map`) and max-pooled to the last stage's frame rate
            by the recipe (`fusion.fusion_outputs`); CLAP's extractor fills every clip to 10 s, so all
            frames count.
        AST (`input_values` [B, 1024, 128] fbank): the patch tokens regrouped per time step
            (channel-major c * F + f, F frequency patches; CLS and DIST are not frames, as in this package's
            AST); an optional `attention_mask` [B, 1024] over fbank frames keeps (n - 16) // 10 + 1 patches.
        Any other encoder: its `hidden_states` [B, T, D] (hooks on the blocks transformers records, else
            its own `output_hidden_states`); an `attention_mask` is passed on and used as the frame mask
            when it has one entry per frame (e.g. Wav2Vec2-BERT).

    Outputs (`AudioFusionOutput`): last_hidden_state [B, T, D] fused frames (zero past a clip's end),
    pooler_output [B, config.hidden_size] pooled over real frames only, frame_mask [B, T] (None when all
    frames are real), with `output_hidden_states` all num_layers + 1 hidden states as frames [B, T, D_l]
    and their clip embeddings (`pooled_hidden_states`), with `output_plain_embedding` the last layer's clip
    embedding (`plain_embedding`; `embedding_type="plain"` makes it the output).
    """

    def __init__(self, config, encoder=None):
        attention = None if encoder is None else encoder.config._attn_implementation
        super().__init__(config)
        if encoder is None:
            encoder = build_encoder(config.encoder_config)
        elif attention is not None:  # keep the attention implementation the encoder was loaded with
            encoder.config._attn_implementation = attention
        config.encoder_config = encoder.config  # one shared config object, as SpeechEncoderDecoderModel does
        self.encoder = encoder
        self.post_init()

    @classmethod
    def from_encoder_pretrained(cls, name_or_path, fusion_layers=None, pooling="mean+max", **kwargs):
        """The fusion of a pretrained encoder (folder or Hub id); kwargs go to the encoder's from_pretrained."""
        encoder = load_pretrained_encoder(name_or_path, **kwargs)
        config = EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=fusion_layers, pooling=pooling)
        return cls(config, encoder=encoder).eval()

    def forward(self, input_values=None, attention_mask=None, input_features=None, is_longer=None,
                output_hidden_states=None, output_plain_embedding=False, return_dict=None):
        """`input_values` or `input_features` as the encoder's feature extractor returns them (see the class
        docstring); `output_plain_embedding` adds the last layer's clip embedding (`plain_embedding`)."""
        inputs = input_values if input_values is not None else input_features
        if inputs is None:
            raise ValueError("pass input_values or input_features, as the encoder's feature extractor returns them")
        return self.fusion_forward(inputs, attention_mask, output_hidden_states, output_plain_embedding, return_dict,
                                   is_longer=is_longer)

    def check_inputs(self, inputs, attention_mask):
        """The encoder checks its own input."""

    def clip_outputs(self, inputs, attention_mask, output_hidden_states, plain, is_longer=None):
        """Raw-waveform encoders: one sub-batch per clip length; the others: one pass and a frame mask."""
        config = self.config
        layers = sorted({*config.output_layers, *([config.num_layers] if plain else [])})
        layers = list(range(config.num_layers + 1)) if output_hidden_states else layers
        plain = config.num_layers if plain else None  # the last layer, pooled like the fused ones
        kind = config.encoder_type
        waveform = self.encoder.main_input_name == "input_values" and kind != AST
        if waveform and hasattr(self.encoder, "_get_feat_extract_output_lengths"):
            lengths = None if attention_mask is None else lengths_from_mask(attention_mask, *inputs.shape)
            if lengths is not None and int(lengths.min()) == 0:
                raise ValueError("attention_mask has a clip with no real samples; drop it or give it some audio")

            def sub_batch(values):
                maps, _, _ = self.encoder_layers({"input_values": values}, layers)
                return fusion_outputs(config, maps, output_hidden_states, plain)

            return forward_by_length(sub_batch, inputs, lengths)
        encoder_inputs = {self.encoder.main_input_name: inputs}
        if kind == CLAP and is_longer is not None:
            encoder_inputs["is_longer"] = is_longer
        if kind not in (WHISPER, CLAP, AST) and attention_mask is not None:
            encoder_inputs["attention_mask"] = attention_mask
        maps, tokens, strides = self.encoder_layers(encoder_inputs, layers)
        mask = None if kind == CLAP else self._frame_mask(attention_mask, maps[layers[0]].shape[1])
        out = fusion_outputs(config, maps, output_hidden_states, plain, mask, tokens, strides)
        out["frame_mask"] = mask
        return out

    def _frame_mask(self, attention_mask, num_frames):
        """[B, num_frames] bool of real frames from the input's `attention_mask`, or None (all real)."""
        kind = self.config.encoder_type
        if attention_mask is None:
            return None
        real = attention_mask.long().sum(dim=1)
        if kind == WHISPER:  # a mask over samples (the extractor's default) or over mel frames -> encoder frames
            mel_frames = self.config.encoder_config.max_source_positions * 2
            hop = attention_mask.shape[1] // mel_frames
            real = ((real + hop - 1) // hop + 1) // 2
        elif kind == AST:
            encoder = self.config.encoder_config
            real = ((real - encoder.patch_size) // encoder.time_stride + 1).clamp(min=1)
        elif attention_mask.shape[1] != num_frames:
            return None
        mask = torch.arange(num_frames, device=attention_mask.device) < real.unsqueeze(1)
        return None if bool(mask.all()) else mask

    def encoder_layers(self, encoder_inputs, layers):
        """(maps {l: [b, T, D] frames, CLAP: [b, C, T, F] maps}, AST's (CLS+DIST)/2 {l: [b, D]} or None,
        CLAP's time strides of layers 0-N or None) for the hidden-state numbers `layers`."""
        if self.config.encoder_type == CLAP:
            maps = self.encoder(**encoder_inputs, output_hidden_states=True).hidden_states
            ratio = self.config.encoder_config.spec_size // self.config.encoder_config.num_mel_bins
            strides = [maps[0].shape[-1] // m.shape[-1] for m in maps]  # image width = frames / ratio
            return {layer: unfold_clap_map(maps[layer], ratio) for layer in layers}, None, strides
        states = self._hidden_states(encoder_inputs, layers)
        if self.config.encoder_type != AST:
            return states, None, None
        frequency = self.config.layer_sizes[0] // self.config.encoder_config.hidden_size
        frames, tokens = {}, {}
        for layer, state in states.items():
            patches = state[:, 2:]  # [b, f * t, D], frequency-major
            grid = patches.reshape(patches.shape[0], frequency, -1, patches.shape[-1]).permute(0, 3, 2, 1)
            frames[layer] = frame_features(grid, 1)
            tokens[layer] = (state[:, 0] + state[:, 1]) / 2
        return frames, tokens, None

    def _hidden_states(self, encoder_inputs, layers):
        """{l: [b, T, D]}: the input to block 1 (l = 0) and block outputs, captured with hooks."""
        blocks = encoder_blocks(self.encoder)
        if blocks is None or len(blocks) != self.config.num_layers:
            hidden = self.encoder(**encoder_inputs, output_hidden_states=True).hidden_states
            return {layer: hidden[layer] for layer in layers}
        deepest, captured = max(layers), {}

        def capture_input(module, args, kwargs):
            captured[0] = args[0] if args else kwargs["hidden_states"]
            if deepest == 0:
                raise _StopForward

        def capture_output(index):
            def hook(module, args, output):
                captured[index] = output[0] if isinstance(output, tuple) else output
                if index == deepest and not torch.compiler.is_exporting():  # torch.export cannot trace the raise
                    raise _StopForward
            return hook

        handles = [blocks[0].register_forward_pre_hook(capture_input, with_kwargs=True)]
        handles += [block.register_forward_hook(capture_output(i)) for i, block in enumerate(blocks[:deepest], 1)]
        try:
            self.encoder(**encoder_inputs)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return {layer: captured[layer] for layer in layers}

class EncoderFusionForAudioClassification(EncoderFusionPreTrainedModel):
    """A linear classifier on the fused clip embedding (`config.classifier_input == "fusion"`, e.g. a
    `fusion-eval --export-classifier` probe) or on the last layer's ("plain"). Returns logits [B, num_labels];
    `labels` give a loss (`classification.classification_loss`)."""

    def __init__(self, config):
        super().__init__(config)
        self.encoder_fusion = EncoderFusionModel(config)
        width = config.hidden_size if config.classifier_input == "fusion" else config.layer_embedding_size[-1]
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def forward(self, input_values=None, attention_mask=None, labels=None, output_hidden_states=None,
                return_dict=None, input_features=None, is_longer=None):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        plain = self.config.classifier_input == "plain"
        outputs = self.encoder_fusion(input_values, attention_mask=attention_mask, input_features=input_features,
                                      is_longer=is_longer, output_hidden_states=output_hidden_states,
                                      output_plain_embedding=plain)
        logits = self.classifier(outputs.plain_embedding if plain else outputs.pooler_output)
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


def load_encoder_feature_extractor(name_or_path, **kwargs):
    """The encoder's own feature extractor, set to return an `attention_mask` where its class can (wav2vec2
    family, Whisper) so that the model knows each clip's real length; kwargs go to from_pretrained."""
    from transformers import AutoFeatureExtractor

    extractor = AutoFeatureExtractor.from_pretrained(name_or_path, **kwargs)
    if hasattr(extractor, "return_attention_mask"):
        extractor.return_attention_mask = True
    return extractor
