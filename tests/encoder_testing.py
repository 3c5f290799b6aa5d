"""Tiny random transformers audio encoders (one per family) and their own feature extractors, for the
encoder-fusion tests; hidden sizes 8-16, 2-3 layers, so that every forward takes milliseconds."""

import numpy as np
import torch
from transformers import (
    ASTConfig, ASTFeatureExtractor, ASTModel, ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel,
    Data2VecAudioConfig, Data2VecAudioModel, HubertConfig, HubertModel, WavLMConfig, WavLMModel, Wav2Vec2Config,
    Wav2Vec2FeatureExtractor, Wav2Vec2Model, WhisperConfig, WhisperFeatureExtractor, WhisperModel,
)

WAVEFORM = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
                conv_stride=(5, 4), conv_kernel=(10, 4), num_feat_extract_layers=2, num_conv_pos_embeddings=8,
                num_conv_pos_embedding_groups=2, vocab_size=8)
# AST on 128 fbank frames (1.28 s): a 12 x 12 patch grid
AST_FRAMES = 128


def tiny_encoder(family):
    """(encoder module as the fusion model holds it, full model to save, feature extractor) for a family."""
    if family in ("wav2vec2", "wav2vec2-layer", "hubert", "wavlm", "data2vec-audio"):
        model = {
            "wav2vec2": lambda: Wav2Vec2Model(Wav2Vec2Config(**WAVEFORM)),  # group norm, like wav2vec2-base
            "wav2vec2-layer": lambda: Wav2Vec2Model(Wav2Vec2Config(**WAVEFORM, feat_extract_norm="layer",
                                                                   do_stable_layer_norm=True)),
            "hubert": lambda: HubertModel(HubertConfig(**WAVEFORM)),
            "wavlm": lambda: WavLMModel(WavLMConfig(**WAVEFORM, num_buckets=16, max_bucket_distance=20)),
            "data2vec-audio": lambda: Data2VecAudioModel(Data2VecAudioConfig(
                **{**WAVEFORM, "num_conv_pos_embeddings": 3}, conv_pos_kernel_size=5)),
        }[family]()
        extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True)
        return model, model, extractor
    if family == "whisper":
        model = WhisperModel(WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
                                           decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=32,
                                           vocab_size=64, decoder_start_token_id=1, bos_token_id=1, eos_token_id=2,
                                           pad_token_id=0, max_target_positions=8))
        return model.encoder, model, WhisperFeatureExtractor(return_attention_mask=True)
    if family == "clap":
        audio = ClapAudioConfig(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=8, hidden_size=16,
                                projection_dim=8, window_size=8)
        text = dict(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                    projection_dim=8)
        model = ClapModel(ClapConfig(text_config=text, audio_config=audio.to_dict(), projection_dim=8))
        return model.audio_model, model, ClapFeatureExtractor(truncation="rand_trunc")
    if family == "ast":
        model = ASTModel(ASTConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                                   max_length=AST_FRAMES))
        return model, model, ASTFeatureExtractor(max_length=AST_FRAMES)
    raise ValueError(family)


def save_tiny_encoder(family, folder, seed=0):
    """Save a tiny random encoder checkpoint (the full model: Whisper encoder-decoder, CLAP text + audio) with
    its feature extractor, as a user's transformers folder would be. Returns the folder."""
    torch.manual_seed(seed)
    _, full, extractor = tiny_encoder(family)
    full.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


def clips(rate, seconds=(0.5, 1.0), seed=0):
    """Noise clips (float32) of the given lengths at `rate`."""
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(s * rate))).astype(np.float32) for s in seconds]
