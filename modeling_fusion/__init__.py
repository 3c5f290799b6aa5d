"""Multilayer fusion audio embeddings (Niizumi et al., EUSIPCO 2022) as Hugging Face models.

Importing the package registers every model with the transformers Auto classes ("library mode"), so
folders load without `trust_remote_code`; the same files also ship as remote code in each folder.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

from .configuration_cnn14 import Cnn14FusionConfig
from .feature_extraction_cnn14 import Cnn14FeatureExtractor
from .modeling_cnn14 import Cnn14ForAudioClassification, Cnn14FusionModel

__version__ = "0.1.0"

# (config, base model, classification model, feature extractor) per backbone
BACKBONES = {
    "cnn14": (Cnn14FusionConfig, Cnn14FusionModel, Cnn14ForAudioClassification, Cnn14FeatureExtractor),
}

for _config, _model, _head, _extractor in BACKBONES.values():
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForAudioClassification.register(_config, _head, exist_ok=True)
    AutoFeatureExtractor.register(_config, _extractor, exist_ok=True)
