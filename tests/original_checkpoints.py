"""Random checkpoints in each backbone's original published layout, for converter and hub tests."""

import torch
from ast_reference import random_ast_head
from panns_reference import random_panns_cnn14
from efficientat_testing import random_model
from test_ast_convert import original_layout
from vggish_reference import random_torchvggish, torchvggish_checkpoint


def cnn14_checkpoint(path, sampling_rate):
    torch.save({"iteration": 0, "model": random_panns_cnn14(sampling_rate, seed=1).state_dict()}, path)


def ast_checkpoint(path):
    """The AudioSet AST's shapes (768-d, 12 blocks, 12 x 101 patches, 527 classes), original release keys."""
    full = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                max_length=1024, layer_norm_eps=1e-6)
    torch.save(original_layout(random_ast_head(seed=2, num_labels=527, **full)), path)


def wav2vec2_base_folder(path):
    """facebook/wav2vec2-base's layout (group norm, 12 blocks, its preprocessor_config) at 16-d, random weights."""
    from encoder_testing import WAVEFORM
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(5)
    Wav2Vec2Model(Wav2Vec2Config(**{**WAVEFORM, "num_hidden_layers": 12})).save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(path)


def efficientat_checkpoint(path):
    """mn04_as's flat upstream state dict (features.N.block.J..., classifier.2/.5), random weights."""
    from modeling_fusion.convert.efficientat import key_mapping

    model = random_model(seed=4)
    ours = model.state_dict()
    torch.save({upstream: ours[key] for upstream, key in key_mapping(model).items()}, path)


def yamnet_tflite(path):
    """The real yamnet.tflite (4 MB) from ../shared/weights: a flatbuffer is not worth faking."""
    import shutil

    from conftest import shared_path

    shutil.copyfile(shared_path("weights", "yamnet.tflite"), path)


# variant -> function(path) writing a random checkpoint of that variant's source layout
ORIGINAL_CHECKPOINTS = {
    "cnn14-16k-fusion-3-6": lambda path: cnn14_checkpoint(path, 16000),
    "cnn14-32k-fusion-3-6": lambda path: cnn14_checkpoint(path, 32000),
    "ast-audioset-fusion-5-12": ast_checkpoint,
    "efficientat-mn04-as-fusion-12-14": efficientat_checkpoint,
    "vggish-fusion-10-15": lambda path: torch.save(torchvggish_checkpoint(random_torchvggish(seed=3)), path),
    "wav2vec2-base-fusion-6-12": wav2vec2_base_folder,
    "yamnet-fusion-6-14": yamnet_tflite,
}
