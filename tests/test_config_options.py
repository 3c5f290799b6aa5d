"""Every fusion config checks its options however they arrive: constructor, `from_pretrained(folder, **kwargs)`
(transformers sets those attributes after construction, so checks in `__init__` alone missed them), a
remote-code folder loaded with trust_remote_code, and `config.option = value` after loading."""

import pytest
from encoder_testing import WAVEFORM
from transformers import AutoConfig, AutoModel, Wav2Vec2Config

from modeling_fusion import (
    AstFusionConfig, Cnn14FusionConfig, Cnn14FusionModel, EfficientATFusionConfig, VGGishFusionConfig,
    YAMNetFusionConfig,
)
from modeling_fusion.configuration_encoder_fusion import EncoderFusionConfig
from modeling_fusion.convert.save_folder import save_model_folder
from modeling_fusion.feature_extraction_cnn14 import Cnn14FeatureExtractor

TINY_AST = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)
# name -> (config factory, a valid other layer set, layer numbers outside the range)
CONFIGS = {
    "cnn14": (lambda **kw: Cnn14FusionConfig(**kw), [1, 2], [[4, 99], [0, 6], [7]]),
    "efficientat": (lambda **kw: EfficientATFusionConfig(**kw), [3, 9], [[4, 99], [0, 14], [18]]),
    "vggish": (lambda **kw: VGGishFusionConfig(**kw), [1, 22], [[4, 99], [0, 15], [23]]),
    "yamnet": (lambda **kw: YAMNetFusionConfig(**kw), [2, 5], [[4, 99], [0, 14], [15]]),
    "ast": (lambda **kw: AstFusionConfig(ast_config=TINY_AST, **{"fusion_layers": [1, 3], **kw}), [2, 3],
            [[4, 99], [0, 3], [4]]),
    "encoder_fusion": (lambda **kw: EncoderFusionConfig(encoder_config=Wav2Vec2Config(**WAVEFORM), **kw), [0, 3],
                       [[4, 99], [-1, 2], [4]]),
}
BAD_OPTIONS = [("pooling", "median"), ("embedding_type", "foo"), ("classifier_input", "foo"),
               ("fusion_layers", "36"), ("fusion_layers", [])]


def bad_values(name):
    """(option, bad value) pairs for a config: its out-of-range layer sets and the shared bad options."""
    return [("fusion_layers", layers) for layers in CONFIGS[name][2]] + BAD_OPTIONS


def message(option):
    """What the ValueError must say: the option's name and what it may be."""
    return rf"{option} must be (one of|a list of|block|ConvBlock|layer|the paper's|hidden-state)"


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def saved(request, tmp_path_factory):
    """(name, folder of a saved config with its remote code, as a Hub folder has it)."""
    folder = tmp_path_factory.mktemp(request.param)
    config = CONFIGS[request.param][0]()
    previous = type(config).__dict__.get("_auto_class")
    config.register_for_auto_class()  # a class attribute: undone below, so later tests' saves write no auto_map
    try:
        config.save_pretrained(folder)
    finally:
        type(config)._auto_class = previous
    return request.param, folder


def test_constructor_refuses_bad_values(saved):
    name, _ = saved
    for option, value in bad_values(name):
        with pytest.raises(ValueError, match=message(option)):
            CONFIGS[name][0](**{option: value})


def test_from_pretrained_kwargs_refuse_bad_values(saved):
    name, folder = saved
    config_class = type(CONFIGS[name][0]())
    for option, value in bad_values(name):
        with pytest.raises(ValueError, match=message(option)):
            config_class.from_pretrained(folder, **{option: value})


def test_remote_code_folder_refuses_bad_values(saved):
    """AutoConfig and AutoModel with trust_remote_code run the folder's own copy of the checks; AutoModel
    raises before any weights are read (the folder has none)."""
    name, folder = saved
    for option, value in bad_values(name):
        with pytest.raises(ValueError, match=message(option)):
            AutoConfig.from_pretrained(folder, trust_remote_code=True, **{option: value})
    for option, value in (("fusion_layers", [4, 99]), ("pooling", "median"), ("embedding_type", "foo")):
        with pytest.raises(ValueError, match=message(option)):
            AutoModel.from_pretrained(folder, trust_remote_code=True, **{option: value})


def test_assignment_after_load_refuses_bad_values_and_keeps_the_old_one(saved):
    name, folder = saved
    for config in (type(CONFIGS[name][0]()).from_pretrained(folder),
                   AutoConfig.from_pretrained(folder, trust_remote_code=True)):
        before = config.to_dict()
        for option, value in bad_values(name):
            with pytest.raises(ValueError, match=message(option)):
                setattr(config, option, value)
        assert config.to_dict() == before


def test_good_values_arrive_checked_by_every_route(saved):
    """A valid layer set comes out sorted without repeats, whichever way it is given."""
    name, folder = saved
    layers = CONFIGS[name][1]
    given = list(reversed(layers)) + [layers[0]]
    config_class = type(CONFIGS[name][0]())
    assert CONFIGS[name][0](fusion_layers=given).fusion_layers == layers
    assert config_class.from_pretrained(folder, fusion_layers=given, pooling="max").fusion_layers == layers
    remote = AutoConfig.from_pretrained(folder, trust_remote_code=True, fusion_layers=given, embedding_type="plain")
    assert remote.fusion_layers == layers and remote.embedding_type == "plain"
    remote.fusion_layers = tuple(given)
    remote.pooling = "mean"
    assert remote.fusion_layers == layers and remote.pooling == "mean"
    assert type(remote).from_dict(remote.to_dict()).fusion_layers == layers


@pytest.mark.parametrize("name,option,value,match", [
    ("cnn14", "block_channels", (4, 8), "block_channels needs 6 entries"),
    ("efficientat", "width_mult", 0, "width_mult must be positive"),
    ("efficientat", "num_mel_bins", 100, "num_mel_bins must be a multiple of 32"),
    ("vggish", "num_mel_bins", 32, "needs 64 mel bins"),
    ("yamnet", "patch_hop_frames", 0, "patch_hop_frames must be in"),
])
def test_per_config_checks_run_on_assignment_and_kwargs(name, option, value, match, tmp_path):
    config = CONFIGS[name][0]()
    with pytest.raises(ValueError, match=match):
        CONFIGS[name][0](**{option: value})
    with pytest.raises(ValueError, match=match):
        setattr(config, option, value)
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=match):
        type(config).from_pretrained(tmp_path, **{option: value})


def test_model_folder_loads_with_good_kwargs_and_refuses_bad_ones(tmp_path):
    """The issue's example on a real model folder: fusion_layers=[4, 99] used to load and fail in forward."""
    model = Cnn14FusionModel(Cnn14FusionConfig(block_channels=(4, 8, 8, 16, 16, 32))).eval()
    save_model_folder(model, Cnn14FeatureExtractor(), tmp_path)
    with pytest.raises(ValueError, match="fusion_layers must be ConvBlock numbers 1-6, got \\[4, 99\\]"):
        AutoModel.from_pretrained(tmp_path, trust_remote_code=True, fusion_layers=[4, 99])
    loaded = AutoModel.from_pretrained(tmp_path, trust_remote_code=True, fusion_layers=[2, 1])
    assert loaded.config.fusion_layers == [1, 2] and loaded.config.hidden_size == 4 * 32 + 8 * 16
