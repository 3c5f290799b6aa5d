"""AST converters: original release layout (`module.v.*`, fused qkv, `mlp_head`) and transformers folders.

Converted weights are compared bit for bit; outputs of a model loaded from safetensors may differ from the
in-memory reference in the last float32 bits (BLAS picks kernels by memory alignment: measured up to
4.2e-7 on logits), so outputs are compared with atol 1e-6.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ast_reference import random_ast_head
from transformers import ASTFeatureExtractor

from modeling_fusion import AstFusionFeatureExtractor, AstFusionForAudioClassification, AstFusionModel
from modeling_fusion.convert import main as convert_main

# 64-d heads, as every published AST / DeiT size (the converter reads the head count from the width)
SMALL = dict(hidden_size=128, num_attention_heads=2, num_hidden_layers=2, intermediate_size=160)


def original_layout(model):
    """transformers ASTForAudioClassification -> the original release's keys, by the inverse mapping
    (DataParallel prefix, timm names, q/k/v stacked into one qkv, DeiT's ImageNet heads included)."""
    source = {key: value.clone() for key, value in model.state_dict().items()}
    prefix = "audio_spectrogram_transformer."
    out = {
        "module.v.cls_token": source[prefix + "embeddings.cls_token"],
        "module.v.dist_token": source[prefix + "embeddings.distillation_token"],
        "module.v.pos_embed": source[prefix + "embeddings.position_embeddings"],
        "module.v.norm.weight": source[prefix + "layernorm.weight"],
        "module.v.norm.bias": source[prefix + "layernorm.bias"],
        "module.mlp_head.0.weight": source["classifier.layernorm.weight"],
        "module.mlp_head.0.bias": source["classifier.layernorm.bias"],
        "module.mlp_head.1.weight": source["classifier.dense.weight"],
        "module.mlp_head.1.bias": source["classifier.dense.bias"],
        "module.v.head.weight": torch.zeros(1000, model.config.hidden_size),
        "module.v.head.bias": torch.zeros(1000),
        "module.v.head_dist.weight": torch.zeros(1000, model.config.hidden_size),
        "module.v.head_dist.bias": torch.zeros(1000),
    }
    for kind in ("weight", "bias"):
        out[f"module.v.patch_embed.proj.{kind}"] = source[prefix + f"embeddings.patch_embeddings.projection.{kind}"]
        for i in range(model.config.num_hidden_layers):
            layer = f"{prefix}layers.{i}."
            block = f"module.v.blocks.{i}."
            out[block + f"attn.qkv.{kind}"] = torch.cat(
                [source[layer + f"attention.{p}_proj.{kind}"] for p in ("q", "k", "v")], dim=0)
            out[block + f"attn.proj.{kind}"] = source[layer + f"attention.o_proj.{kind}"]
            out[block + f"norm1.{kind}"] = source[layer + f"layernorm_before.{kind}"]
            out[block + f"norm2.{kind}"] = source[layer + f"layernorm_after.{kind}"]
            out[block + f"mlp.fc1.{kind}"] = source[layer + f"mlp.fc1.{kind}"]
            out[block + f"mlp.fc2.{kind}"] = source[layer + f"mlp.fc2.{kind}"]
    return out


def labels_csv(path, count):
    path.write_text("index,mid,display_name\n" + "".join(f"{i},/m/{i},class {i}\n" for i in range(count)))
    return path


def test_original_checkpoint_round_trip(tmp_path):
    # the original AST's LayerNorms: eps 1e-6 in the transformer (timm), 1e-5 in mlp_head
    reference = random_ast_head(seed=4, num_labels=7, layer_norm_eps=1e-6, **SMALL)
    state = original_layout(reference)
    assert len(state) == 15 + 12 * SMALL["num_hidden_layers"]
    torch.save(state, tmp_path / "audioset_10_10_0.4593.pth")
    output = tmp_path / "ast-fusion"
    convert_main(["ast", "--checkpoint", str(tmp_path / "audioset_10_10_0.4593.pth"), "--output", str(output),
                  "--layers", "1", "2", "--labels", str(labels_csv(tmp_path / "labels.csv", 7))])
    head = AstFusionForAudioClassification.from_pretrained(output).eval()
    base = AstFusionModel.from_pretrained(output).eval()
    assert head.config.ast_config["layer_norm_eps"] == 1e-6 and head.config.classifier_layer_norm_eps == 1e-5
    assert head.config.id2label[6] == "class 6" and head.config.problem_type == "single_label_classification"
    inputs = torch.randn(2, 1024, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ast = reference.audio_spectrogram_transformer(inputs, output_hidden_states=True)
        ours = base(inputs, output_hidden_states=True, output_plain_embedding=True)
        logits = head(inputs).logits
        block1 = reference.audio_spectrogram_transformer.layernorm(ast.hidden_states[1])
        norm = reference.classifier.layernorm
        expected_logits = reference.classifier.dense(F.layer_norm(ast.pooler_output, norm.normalized_shape,
                                                                  norm.weight, norm.bias, eps=1e-5))
    close = dict(atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.plain_embedding, ast.pooler_output, **close)
    fused = torch.cat([(block1[:, 0] + block1[:, 1]) / 2, ast.pooler_output], dim=-1)
    torch.testing.assert_close(ours.pooler_output, fused, **close)
    torch.testing.assert_close(logits, expected_logits, **close)
    ours_state = head.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(ours_state[key.replace("audio_spectrogram_transformer.", "ast_fusion.ast.")], value), key
    assert len(ours_state) == len(reference.state_dict())
    extractor = AstFusionFeatureExtractor.from_pretrained(output)
    assert (extractor.mean, extractor.std, extractor.max_length) == (-4.2677393, 4.5689974, 1024)
    assert extractor.pad_to_max_length is False


def test_unknown_original_key_is_an_error(tmp_path):
    state = original_layout(random_ast_head(seed=5, **SMALL))
    state["module.v.blocks.0.attn.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(SystemExit, match="attn.extra.weight"):
        convert_main(["ast", "--checkpoint", str(tmp_path / "bad.pth"), "--output", str(tmp_path / "out"),
                      "--layers", "1"])


def test_transformers_folder(tmp_path):
    reference = random_ast_head(seed=6, num_labels=4, **SMALL)
    reference.save_pretrained(tmp_path / "hf")
    ASTFeatureExtractor(mean=-6.5, std=5.25).save_pretrained(tmp_path / "hf")
    output = tmp_path / "ast-fusion"
    convert_main(["ast", "--checkpoint", str(tmp_path / "hf"), "--output", str(output), "--layers", "2"])
    head = AstFusionForAudioClassification.from_pretrained(output).eval()
    assert head.config.fusion_layers == [2] and head.config.ast_config["hidden_size"] == 128
    assert head.config.classifier_layer_norm_eps == reference.config.layer_norm_eps == 1e-12
    extractor = AstFusionFeatureExtractor.from_pretrained(output)
    assert (extractor.mean, extractor.std) == (-6.5, 5.25)
    audio = (np.random.default_rng(0).standard_normal(16000) * 0.1).astype(np.float32)
    standard = ASTFeatureExtractor(mean=-6.5, std=5.25)(audio, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(head(standard["input_values"]).logits, reference(standard["input_values"]).logits,
                                   atol=1e-6, rtol=0)
    assert head.config.id2label == reference.config.id2label


def test_hub_id_offline_is_a_clear_error(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run(
        [sys.executable, "-m", "modeling_fusion.convert", "ast", "--checkpoint",
         "MIT/ast-finetuned-audioset-10-10-0.4593", "--output", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert ("model folder MIT/ast-finetuned-audioset-10-10-0.4593 does not exist, and the Hugging Face Hub cannot be "
            "reached" in result.stderr)
    assert "Traceback" not in result.stderr
    assert "hf download" in result.stderr and not (tmp_path / "out").exists()
