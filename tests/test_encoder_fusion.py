"""EncoderFusionModel on tiny random encoders of every family: config round trips, the fused embedding
against the recipe computed here from the original encoder's own hidden states (real frames only), layer
numbering against forward hooks, mixed-length batches against single clips, the classifier and errors.

Tolerances: the fusion model runs the very same encoder modules, so values differ only by float32
reduction order between batch shapes; rtol 1e-5 plus an atol of 1e-5 x the largest magnitude."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from encoder_testing import AST_FRAMES, clips, tiny_encoder
from transformers import (
    AutoConfig, AutoModelForAudioClassification, SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertModel, Wav2Vec2FeatureExtractor,
)

from modeling_fusion.chunking import embed_long_clip
from modeling_fusion.configuration_encoder_fusion import EncoderFusionConfig
from modeling_fusion.modeling_encoder_fusion import (
    EncoderFusionForAudioClassification, EncoderFusionModel, encoder_blocks,
)

FAMILIES = ["wav2vec2", "wav2vec2-layer", "hubert", "wavlm", "data2vec-audio", "whisper", "clap", "ast"]
WAVEFORM = {"wav2vec2", "wav2vec2-layer", "hubert", "wavlm", "data2vec-audio"}


def close(actual, expected):
    actual, expected = torch.as_tensor(actual).detach(), torch.as_tensor(expected).detach()
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def build(family, layers, seed=0):
    torch.manual_seed(seed)
    encoder, _, extractor = tiny_encoder(family)
    encoder.eval()
    config = EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=layers)
    return EncoderFusionModel(config, encoder=encoder).eval(), encoder, extractor


def features(extractor, waves):  # wav2vec2's extractor pads only when asked; the others pad to their fixed length
    padding = {"padding": True} if isinstance(extractor, Wav2Vec2FeatureExtractor) else {}
    return extractor(waves, sampling_rate=extractor.sampling_rate, return_tensors="pt", **padding)


def pool(frames):  # the paper's mean + max over time, [T, D] -> [D]
    return frames.mean(dim=0) + frames.amax(dim=0)


def clap_frames(feature_map, ratio, kernel):
    """Independent recipe for one CLAP stage map [C, H, W]: the image rows are `ratio` time chunks of F
    frequency rows each; frame k * W + w is column w of chunk k, flattened c * F + f; then max-pooled in time."""
    channels, height, width = feature_map.shape
    freq = height // ratio
    frames = [feature_map[:, k * freq:(k + 1) * freq, w].reshape(-1) for k in range(ratio) for w in range(width)]
    frames = torch.stack(frames)  # [T, C * F]
    return F.max_pool1d(frames.T.unsqueeze(0), kernel, kernel)[0].T if kernel > 1 else frames


def ast_frames(tokens, freq_patches):
    """Independent recipe for AST tokens [2 + f * t, D] (frequency-major patches): frame t = patches
    (f, t) for all f, flattened d * f_count + f."""
    patches = tokens[2:]
    time_patches = patches.shape[0] // freq_patches
    return torch.stack([torch.stack([patches[f * time_patches + t] for f in range(freq_patches)], dim=1).reshape(-1)
                        for t in range(time_patches)])


def expect(per_clip):
    """[(per-layer real frames [T, D_l], ...) per clip] -> (pooler rows, real-frame counts, fused frames per clip)."""
    rows = torch.stack([torch.cat([pool(frames) for frames in layers]) for layers in per_clip])
    fused = [torch.cat(layers, dim=-1) for layers in per_clip]
    return rows, [f.shape[0] for f in fused], fused


def reference(family, encoder, extractor, waves, layers):
    """Expected outputs (see `expect`) from the original encoder's own hidden states."""
    if family in WAVEFORM:  # each clip alone, unpadded
        per_clip = []
        for wave in waves:
            with torch.no_grad():
                hidden = encoder(**features(extractor, [wave]), output_hidden_states=True).hidden_states
            per_clip.append([hidden[layer][0] for layer in layers])
        return expect(per_clip)
    inputs = features(extractor, waves)
    if family == "whisper":
        captured = []
        handle = encoder.layers[-1].register_forward_hook(lambda m, a, out: captured.append(out))
        with torch.no_grad():
            hidden = list(encoder(inputs["input_features"], output_hidden_states=True).hidden_states)
        handle.remove()
        # transformers ties Whisper's last hidden state to the post-norm output: block L itself is the hook's
        with torch.no_grad():
            close(hidden[-1], encoder.layer_norm(captured[0]))
        hidden[-1] = captured[0]
        counts = [math.ceil(math.ceil(len(w) / 160) / 2) for w in waves]  # mel frames every 160 samples, stride 2
        return expect([[hidden[layer][b, :n] for layer in layers] for b, n in enumerate(counts)])
    if family == "clap":
        with torch.no_grad():
            maps = encoder(**inputs, output_hidden_states=True).hidden_states
        ratio = encoder.config.spec_size // encoder.config.num_mel_bins
        width = {layer: maps[layer].shape[-1] for layer in layers}
        coarsest = min(width.values())
        return expect([[clap_frames(maps[layer][b], ratio, width[layer] // coarsest) for layer in layers]
                       for b in range(len(waves))])
    if family == "ast":
        with torch.no_grad():
            hidden = encoder(**inputs, output_hidden_states=True).hidden_states
        fbank_frames = [1 + (len(w) - 400) // 160 for w in waves]  # kaldi fbank, 25 ms / 10 ms at 16 kHz
        counts = [(n - 16) // 10 + 1 for n in fbank_frames]
        freq = (128 - 16) // 10 + 1
        return expect([[ast_frames(hidden[layer][b], freq)[:n] for layer in layers] for b, n in enumerate(counts)])
    raise ValueError(family)


def model_inputs(family, extractor, waves):
    inputs = features(extractor, waves)
    if family == "ast":  # transformers' extractor pads every clip to max_length and returns no mask: give one
        fbank_frames = torch.tensor([1 + (len(w) - 400) // 160 for w in waves])
        inputs["attention_mask"] = (torch.arange(AST_FRAMES) < fbank_frames[:, None]).long()
    return inputs


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trip(family, tmp_path):
    encoder, _, _ = tiny_encoder(family)
    config = EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=[2, 1], pooling="max")
    config.save_pretrained(tmp_path)
    def without_path(values):
        return {key: value for key, value in values.items() if key != "_name_or_path"}

    for loaded in (EncoderFusionConfig.from_pretrained(tmp_path), AutoConfig.from_pretrained(tmp_path)):
        assert type(loaded) is EncoderFusionConfig and loaded.fusion_layers == [1, 2]
        assert without_path(loaded.to_dict()) == without_path(config.to_dict())  # the full nested dict: no value lost or reset on reload (#40266)
        assert loaded.encoder_config.to_dict() == config.encoder_config.to_dict()
    from_dict = EncoderFusionConfig(encoder_config=config.encoder_config.to_dict(), fusion_layers=[1, 2], pooling="max")
    assert from_dict.to_dict() == config.to_dict()


@pytest.mark.parametrize("family", FAMILIES)
def test_fused_embedding_matches_recipe_and_single_clips(family):
    rate = tiny_encoder(family)[2].sampling_rate
    waves = clips(rate, (0.5, 1.0))
    layers = [0, 2] if family == "clap" else [1, 2]  # CLAP: two frame rates, so the time order matters
    model, encoder, extractor = build(family, layers)
    inputs = model_inputs(family, extractor, waves)
    with torch.no_grad():
        out = model(**inputs)
    expected, counts, frames = reference(family, encoder, extractor, waves, layers)
    close(out.pooler_output, expected)
    for index, clip_frames in enumerate(frames):
        close(out.last_hidden_state[index, :counts[index]], clip_frames)
    assert out.pooler_output.shape[1] == model.config.hidden_size
    if out.frame_mask is not None:
        assert out.frame_mask.sum(dim=1).tolist() == counts
        assert not out.last_hidden_state[~out.frame_mask].any(), "frames past a clip's end are zero"
    else:
        assert family == "clap" and counts[0] == out.last_hidden_state.shape[1]
    for index, wave in enumerate(waves):  # a mixed-length batch gives each clip its single-clip result
        with torch.no_grad():
            single = model(**model_inputs(family, extractor, [wave]))
        close(out.pooler_output[index:index + 1], single.pooler_output)
        frames = single.last_hidden_state.shape[1] if single.frame_mask is None else int(single.frame_mask.sum())
        close(out.last_hidden_state[index, :frames], single.last_hidden_state[0, :frames])


@pytest.mark.parametrize("family", ["wav2vec2-layer", "wavlm", "whisper", "ast"])
def test_layer_numbering_is_block_outputs(family):
    """hidden_states[0] is the input to block 1 and hidden_states[l] the output of block l, as forward hooks on
    the original encoder's blocks see them; the original's own hidden_states agree except the last entry
    where transformers swaps in the post-norm output (Whisper)."""
    model, encoder, extractor = build(family, [1])
    inputs = features(extractor, clips(extractor.sampling_rate, (1.0,)))
    blocks = encoder_blocks(encoder)
    seen = []
    handles = [blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))]
    handles += [b.register_forward_hook(lambda m, a, out: seen.append(out[0] if isinstance(out, tuple) else out))
                for b in blocks]
    with torch.no_grad():
        original = encoder(**{k: v for k, v in inputs.items() if k != "attention_mask"}, output_hidden_states=True)
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        ours = model(**inputs, output_hidden_states=True).hidden_states
    assert len(ours) == len(blocks) + 1 == len(original.hidden_states) == len(seen)
    for layer, tokens in enumerate(seen):
        expected = tokens[0] if family != "ast" else ast_frames(tokens[0], 12)
        close(ours[layer][0, :expected.shape[0]], expected)
    for layer in range(len(blocks)):
        torch.testing.assert_close(original.hidden_states[layer], seen[layer], rtol=0, atol=0)
    raw_last = torch.equal(original.hidden_states[-1], seen[-1])
    assert raw_last == (family != "whisper"), "of these, transformers 5 swaps only Whisper's last entry (post-norm)"


def test_any_other_encoder_works_generically():
    """Wav2Vec2-BERT, a family without special handling: frame-level `input_features` [B, T, 160] and a frame
    `attention_mask`, passed on to the encoder and used as the frame mask."""
    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                                feature_projection_input_dim=160, conv_depthwise_kernel_size=3, output_hidden_size=16)
    encoder = Wav2Vec2BertModel(config).eval()
    model = EncoderFusionModel(EncoderFusionConfig(encoder_config=config, fusion_layers=[1, 2]), encoder=encoder)
    inputs = SeamlessM4TFeatureExtractor()(clips(16000), sampling_rate=16000, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.eval()(**inputs)
        hidden = encoder(**inputs, output_hidden_states=True).hidden_states
    counts = inputs["attention_mask"].sum(dim=1).tolist()
    assert out.frame_mask.sum(dim=1).tolist() == counts and counts[0] < counts[1]
    close(out.pooler_output, torch.stack([torch.cat([pool(hidden[layer][b, :n]) for layer in (1, 2)])
                                          for b, n in enumerate(counts)]))


@pytest.mark.parametrize("family", ["wav2vec2", "whisper", "ast"])
def test_chunk_spec_counts_frames_and_long_clips_run(family):
    """The chunking description's frame count equals the model's real frames; a clip longer than
    `chunk_length_s` runs in chunks into that many frames, pooled as the recipe pools them."""
    model, _, extractor = build(family, [1, 2])
    spec = model.config.chunk_spec(extractor)
    rate = extractor.sampling_rate
    waves = clips(rate, (0.5, 0.73, 1.0))
    with torch.no_grad():
        out = model(**model_inputs(family, extractor, waves))
    real = [out.last_hidden_state.shape[1]] * 3 if out.frame_mask is None else out.frame_mask.sum(dim=1).tolist()
    assert [spec.num_frames(len(w)) for w in waves] == real
    assert spec.frame_hop == {"wav2vec2": 5 * 4, "whisper": 2 * 160, "ast": 10 * 160}[family]  # conv strides; 20 ms; 100 ms
    audio = clips(rate, (3.0,))[0]
    long = embed_long_clip(model, extractor, audio, chunk_length_s=1.0)
    assert long.last_hidden_state.shape[1] == spec.num_frames(len(audio))
    close(long.pooler_output, pool(long.last_hidden_state[0])[None])


def test_blocks_above_the_deepest_fused_layer_do_not_run():
    model, encoder, extractor = build("wav2vec2", [1])
    calls = []
    encoder.encoder.layers[1].register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        model(**features(extractor, clips(16000, (0.5,))))
    assert calls == []
    with torch.no_grad():
        model(**features(extractor, clips(16000, (0.5,))), output_hidden_states=True)
    assert calls == [1]


def test_classifier_head_on_the_fused_embedding():
    torch.manual_seed(0)
    encoder, _, extractor = tiny_encoder("hubert")
    config = EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=[0, 3], id2label={0: "a", 1: "b"},
                                 label2id={"a": 0, "b": 1})
    head = EncoderFusionForAudioClassification(config).eval()
    inputs = features(extractor, clips(16000, (0.5, 1.0)))
    with torch.no_grad():
        out = head(**inputs, labels=torch.tensor([0, 1]))
        pooled = head.encoder_fusion(**inputs).pooler_output
    close(out.logits, head.classifier(pooled))
    close(out.loss, F.cross_entropy(head.classifier(pooled), torch.tensor([0, 1])))


def test_plain_embedding_and_the_export_classifier_call(tmp_path):
    """The last layer alone is the plain embedding (the baseline row); fusion-eval's --export-classifier loads a
    folder with these settings into a ForAudioClassification model whose classifier reads the fused embedding."""
    model, _, extractor = build("wav2vec2", [1, 2])
    inputs = features(extractor, clips(16000, (0.5, 1.0)))
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True, output_plain_embedding=True)
    close(out.plain_embedding, out.pooled_hidden_states[3])
    assert model(**inputs).plain_embedding is None
    model.save_pretrained(tmp_path)
    head = AutoModelForAudioClassification.from_pretrained(
        tmp_path, classifier_input="fusion", embedding_type="fusion", fusion_layers=[0, 3],
        problem_type="single_label_classification", id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1}).eval()
    with torch.no_grad():
        logits = head(**inputs).logits
        fused = head.encoder_fusion(**inputs).pooler_output
    assert fused.shape == (2, 2 * 16) and head.config.fusion_layers == [0, 3]
    close(logits, head.classifier(fused))
    plain = EncoderFusionModel.from_pretrained(tmp_path, embedding_type="plain").eval()
    with torch.no_grad():
        close(plain(**inputs).pooler_output, out.plain_embedding)


def test_bad_configs_raise():
    encoder, _, _ = tiny_encoder("wav2vec2")
    with pytest.raises(ValueError, match="needs encoder_config"):
        EncoderFusionConfig()
    with pytest.raises(ValueError, match="0-3"):
        EncoderFusionConfig(encoder_config=encoder.config, fusion_layers=[4])
    with pytest.raises(ValueError, match="pooling"):
        EncoderFusionConfig(encoder_config=encoder.config, pooling="cls+dist")
    with pytest.raises(ValueError, match="model_type"):
        EncoderFusionConfig(encoder_config={"hidden_size": 16})
