"""Multilayer fusion audio embeddings (Niizumi et al., EUSIPCO 2022) as Hugging Face models.

Importing the package registers every model with the transformers Auto classes ("library mode"), so
folders load without `trust_remote_code`; the same files also ship as remote code in each folder.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

from .configuration_ast import AstFusionConfig
from .feature_extraction_ast import AstFusionFeatureExtractor
from .modeling_ast import AstFusionForAudioClassification, AstFusionModel
from .configuration_cnn14 import Cnn14FusionConfig
from .feature_extraction_cnn14 import Cnn14FeatureExtractor
from .modeling_cnn14 import Cnn14ForAudioClassification, Cnn14FusionModel
from .configuration_efficientat import EfficientATFusionConfig
from .feature_extraction_efficientat import EfficientATFeatureExtractor
from .modeling_efficientat import EfficientATForAudioClassification, EfficientATFusionModel
from .configuration_vggish import VGGishFusionConfig
from .feature_extraction_vggish import VGGishFeatureExtractor
from .modeling_vggish import VGGishForAudioClassification, VGGishFusionModel
from .configuration_encoder_fusion import EncoderFusionConfig
from .modeling_encoder_fusion import EncoderFusionForAudioClassification, EncoderFusionModel
from .configuration_yamnet import YAMNetFusionConfig
from .feature_extraction_yamnet import YAMNetFeatureExtractor
from .modeling_yamnet import YAMNetForAudioClassification, YAMNetFusionModel

__version__ = "0.1.0"

# (config, base model, classification model, feature extractor) per backbone
BACKBONES = {
    "ast": (AstFusionConfig, AstFusionModel, AstFusionForAudioClassification, AstFusionFeatureExtractor),
    "cnn14": (Cnn14FusionConfig, Cnn14FusionModel, Cnn14ForAudioClassification, Cnn14FeatureExtractor),
    "efficientat": (EfficientATFusionConfig, EfficientATFusionModel, EfficientATForAudioClassification,
                    EfficientATFeatureExtractor),
    "vggish": (VGGishFusionConfig, VGGishFusionModel, VGGishForAudioClassification, VGGishFeatureExtractor),
    "yamnet": (YAMNetFusionConfig, YAMNetFusionModel, YAMNetForAudioClassification, YAMNetFeatureExtractor),
}

for _config, _model, _head, _extractor in BACKBONES.values():
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForAudioClassification.register(_config, _head, exist_ok=True)
    AutoFeatureExtractor.register(_config, _extractor, exist_ok=True)

# Fusion of any transformers audio encoder: its folders use the encoder's own feature extractor.
AutoConfig.register(EncoderFusionConfig.model_type, EncoderFusionConfig, exist_ok=True)
AutoModel.register(EncoderFusionConfig, EncoderFusionModel, exist_ok=True)
AutoModelForAudioClassification.register(EncoderFusionConfig, EncoderFusionForAudioClassification, exist_ok=True)
